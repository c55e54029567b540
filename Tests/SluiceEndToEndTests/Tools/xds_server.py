#!/usr/bin/env python3
"""Scriptable Envoy v3 ADS management server for end-to-end tests.

    xds_server.py --grpc HOST:PORT --control HOST:PORT [--log FILE]

Serves envoy.service.discovery.v3.AggregatedDiscoveryService (SotW and Delta) on --grpc and a
JSON-over-HTTP control API on --control; prints "ready" once both listen. The same pushes can be
sent to Envoy and to Sluice, and every request each client sends is recorded, so ACK/NACK
sequences can be compared.

Control API (JSON bodies; bad input -> 400 {"error": msg}):
  POST /resources  {"type", "version", "resources": [...], "removed": [...]?, "node": id?}
                   store + push; with "node", only for streams of that node id (per-workload
                   configuration), which then no longer see the resources pushed for all
  POST /raw        {"type", "version", "resources": [...]}  send verbatim, store untouched
  GET  /requests   every request received;  GET /responses  every response sent
  GET  /streams    {"open": n};  POST /stop, POST /start  (gRPC server only);  POST /reset-log
`type` is lds|cds|eds|rds|sds or a full type URL. Requests and responses share one global `seq`
counter, so the two logs can be merged into one timeline.

Resource versions: a stored resource keeps the version of the push that last changed its bytes.
Delta pushes therefore carry only resources whose content changed (as real servers do); SotW
pushes always carry the whole requested set with the push's version.
"""
import argparse
import importlib
import json
import pkgutil
import queue
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import struct_pb2, any_pb2, descriptor_pool, json_format, message_factory

from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

PREFIX = "type.googleapis.com/"
LISTENER = PREFIX + "envoy.config.listener.v3.Listener"
CLUSTER = PREFIX + "envoy.config.cluster.v3.Cluster"
CLA = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE = PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
ALIASES = {"lds": LISTENER, "cds": CLUSTER, "eds": CLA, "rds": ROUTE, "sds": SECRET}
# For these types a SotW response is the complete state and a push replaces the whole set.
COMPLETE_STATE_TYPES = {LISTENER, CLUSTER}
MAX_MESSAGE = 256 * 1024 * 1024  # tests push responses above gRPC's 4 MiB default


class BadRequest(Exception):
    """Invalid control-API input; reported as HTTP 400."""


# ---------------------------------------------------------------------------------------------
# Resources


def load_all_protos():
    """Import every generated module so json_format can resolve any "@type" (also nested Any
    such as a listener's typed_config) from the default descriptor pool."""
    for top in ("envoy", "xds", "udpa", "validate"):
        try:
            package = importlib.import_module(top)
        except ImportError:
            continue
        for info in pkgutil.walk_packages(package.__path__, top + "."):
            if info.name.endswith("_pb2"):
                try:
                    importlib.import_module(info.name)
                except Exception:  # a broken optional module must not stop the server
                    pass


def type_url(value):
    if not isinstance(value, str) or not value:
        raise BadRequest("'type' must be lds|cds|eds|rds|sds or a type URL")
    value = ALIASES.get(value.lower(), value)
    url = value if "/" in value else PREFIX + value
    message_class(url)  # reject unknown types even when no resource is given
    return url


def message_class(url):
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(url.split("/")[-1])
    except KeyError:
        raise BadRequest(f"unknown message type {url}")
    return message_factory.GetMessageClass(descriptor)


# A nested Any whose type this server cannot parse (Istio's own extensions are not in
# xds-protos) is sent with its original type URL and an empty body: enough for a client to see
# which extension a resource uses, which is all conformance tests need.
UNKNOWN_MARKER = "sluice_unknown_type_url"


def mask_unknown_types(value):
    if isinstance(value, list):
        return [mask_unknown_types(item) for item in value]
    if not isinstance(value, dict):
        return value
    url = value.get("@type")
    if isinstance(url, str):
        try:
            descriptor_pool.Default().FindMessageTypeByName(url.split("/")[-1])
        except KeyError:
            return {"@type": PREFIX + "google.protobuf.Struct", "value": {UNKNOWN_MARKER: url}}
    return {key: mask_unknown_types(item) for key, item in value.items()}


def restore_unknown_types(message):
    """Gives masked Any fields their original type URL back (see mask_unknown_types)."""
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.values()
        elif field.is_repeated:
            items = value
        else:
            items = [value]
        for item in items:
            if not hasattr(item, "ListFields"):
                continue
            if item.DESCRIPTOR.full_name == "google.protobuf.Any" and item.type_url == PREFIX + "google.protobuf.Struct":
                body = struct_pb2.Struct()
                item.Unpack(body)
                if UNKNOWN_MARKER in body.fields:
                    item.type_url = body.fields[UNKNOWN_MARKER].string_value
                    item.value = b""
                    continue
            restore_unknown_types(item)


def parse_resource(obj, default_url):
    """proto3 JSON (with optional "@type") -> (name, Any). Only parsing must succeed: tests
    deliberately send resources that Envoy's validation rejects."""
    if not isinstance(obj, dict):
        raise BadRequest("each resource must be a JSON object")
    fields = mask_unknown_types(dict(obj))
    url = fields.pop("@type", default_url)
    msg = message_class(url)()
    try:
        json_format.ParseDict(fields, msg)
    except json_format.ParseError as error:
        raise BadRequest(f"cannot parse {url}: {error}")
    restore_unknown_types(msg)
    name = msg.cluster_name if url == CLA else getattr(msg, "name", "")
    packed = any_pb2.Any()
    packed.Pack(msg, deterministic=True)  # deterministic bytes let us detect unchanged content
    return name, packed


class TypeState:
    """The stored resources of one type: name -> (version, Any)."""

    def __init__(self):
        self.version = None  # version of the last push; None = never pushed
        self.resources = {}


# ---------------------------------------------------------------------------------------------
# Streams


class SotwSub:
    """What a SotW stream asked for, for one type."""

    def __init__(self):
        self.names = set()
        self.explicit = False  # legacy wildcard holds until the client names a resource
        self.last_nonce = None  # nonce of the last response of this type on this stream
        self.sent_names = None  # the names the last response answered

    @property
    def wildcard(self):
        return "*" in self.names or not self.explicit


class DeltaSub:
    """A Delta stream's subscription for one type and the versions we believe it holds."""

    def __init__(self):
        self.wildcard = False
        self.names = set()
        self.known = {}  # name -> version sent to (or reported by) the client

    def wants(self, name):
        return self.wildcard or name in self.names


class Stream:
    def __init__(self, sid, mode):
        self.id = sid
        self.mode = mode
        self.node = None  # node id from the first request that carries one
        self.queue = queue.Queue()  # responses for the gRPC handler; None ends the stream
        self.subs = {}  # type URL -> SotwSub | DeltaSub
        self.nonce = 0

    def next_nonce(self):
        self.nonce += 1
        return str(self.nonce)


# ---------------------------------------------------------------------------------------------
# Protocol state machine (everything under one lock, so pushes and requests are ordered)


class XdsState:
    def __init__(self, log_path=None):
        self.lock = threading.Lock()
        self.types = {}
        self.streams = {}
        self.next_stream = 0
        self.seq = 0
        self.requests = []
        self.responses = []
        self.log = open(log_path, "a", buffering=1) if log_path else None

    # -- bookkeeping --------------------------------------------------------------------------

    def _type(self, url, node=None):
        return self.types.setdefault((node, url), TypeState())

    def _type_for(self, stream, url):
        """Resources pushed for this stream's node, else the ones pushed for every node."""
        key = (stream.node, url)
        return self.types[key] if stream.node is not None and key in self.types else self._type(url)

    def _next_seq(self):
        self.seq += 1
        return self.seq

    def _write_log(self, kind, record):
        if self.log:
            self.log.write(json.dumps({"kind": kind, **record}) + "\n")

    def open_stream(self, mode):
        with self.lock:
            self.next_stream += 1
            stream = Stream(self.next_stream, mode)
            self.streams[stream.id] = stream
            self._write_log("open", {"stream": stream.id, "mode": mode})
            return stream

    def close_stream(self, stream):
        with self.lock:
            if self.streams.pop(stream.id, None) is not None:
                self._write_log("close", {"stream": stream.id})
        stream.queue.put(None)

    def open_count(self):
        with self.lock:
            return len(self.streams)

    def reset_log(self):
        with self.lock:
            self.requests.clear()
            self.responses.clear()

    def snapshot(self, which):
        with self.lock:
            return list(self.requests if which == "requests" else self.responses)

    def _record_request(self, stream, req, delta):
        if stream.node is None and req.HasField("node"):
            stream.node = req.node.id
        record = {
            "seq": self._next_seq(), "stream": stream.id, "mode": stream.mode,
            "type": req.type_url,
            "version_info": None if delta else req.version_info,
            "response_nonce": req.response_nonce,
            "resource_names": [] if delta else list(req.resource_names),
            "error": req.error_detail.message if req.HasField("error_detail") else None,
            "subscribe": list(req.resource_names_subscribe) if delta else [],
            "unsubscribe": list(req.resource_names_unsubscribe) if delta else [],
            "initial_resource_versions": dict(req.initial_resource_versions) if delta else {},
            "node_id": req.node.id if req.HasField("node") else None,
            "node_cluster": req.node.cluster if req.HasField("node") else None,
        }
        self.requests.append(record)
        self._write_log("request", record)

    def _send(self, stream, url, version, items, removed=()):
        """Queue one response. items: [(name, resource_version, Any)]."""
        nonce = stream.next_nonce()
        if stream.mode == "sotw":
            response = discovery_pb2.DiscoveryResponse(
                version_info=version or "", type_url=url, nonce=nonce,
                resources=[packed for _, _, packed in items])
            stream.subs[url].last_nonce = nonce
        else:
            response = discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version or "", type_url=url, nonce=nonce,
                removed_resources=list(removed),
                resources=[discovery_pb2.Resource(name=n, version=v, resource=p)
                           for n, v, p in items])
        record = {"seq": self._next_seq(), "stream": stream.id, "mode": stream.mode,
                  "type": url, "version": version or "", "nonce": nonce,
                  "names": [n for n, _, _ in items], "removed": list(removed)}
        self.responses.append(record)
        self._write_log("response", record)
        stream.queue.put(response)

    # -- SotW ---------------------------------------------------------------------------------

    def on_sotw_request(self, stream, req):
        with self.lock:
            self._record_request(stream, req, delta=False)
            url = req.type_url
            sub = stream.subs.setdefault(url, SotwSub())
            sub.names = set(req.resource_names)
            sub.explicit = sub.explicit or bool(sub.names)
            if sub.last_nonce is None:
                # Nothing sent yet for this type: answer as soon as there is something to say.
                self._sotw_respond(stream, url, sub)
            elif req.response_nonce == sub.last_nonce:
                # ACK or NACK of the latest response; only a changed name set needs an answer.
                if sub.names != sub.sent_names:
                    self._sotw_respond(stream, url, sub)
            # Otherwise the nonce is stale: the client has not seen our latest response yet
            # and will ACK/NACK it, so answering now would only duplicate it.

    def _sotw_respond(self, stream, url, sub, changed_names=()):
        """Send the requested set if the stream wants something that exists (or, for a push,
        a requested name was just deleted)."""
        state = self._type_for(stream, url)
        if sub.wildcard:
            if state.version is None:
                return
            names = sorted(state.resources)
        else:
            names = sorted(n for n in sub.names if n in state.resources)
            if not names and not (sub.names & set(changed_names)):
                return
        sub.sent_names = set(sub.names)
        items = [(n, *state.resources[n]) for n in names]
        self._send(stream, url, state.version, items)

    # -- Delta --------------------------------------------------------------------------------

    def on_delta_request(self, stream, req):
        with self.lock:
            self._record_request(stream, req, delta=True)
            url = req.type_url
            first = url not in stream.subs
            sub = stream.subs.setdefault(url, DeltaSub())
            if first:
                sub.known.update(req.initial_resource_versions)
            subscribe = list(req.resource_names_subscribe)
            unsubscribe = list(req.resource_names_unsubscribe)
            was_wildcard = sub.wildcard
            if first and not subscribe and not unsubscribe:
                sub.wildcard = True  # legacy wildcard
            added = self._apply_subscription(sub, subscribe, unsubscribe)
            changed = first or added or unsubscribe or sub.wildcard != was_wildcard
            if req.response_nonce and not changed:
                return  # ACK or NACK: recorded only
            self._delta_answer(stream, url, sub, added, unsubscribe,
                               sub.wildcard and (first or not was_wildcard))

    @staticmethod
    def _apply_subscription(sub, subscribe, unsubscribe):
        added = set()
        for name in subscribe:
            if name == "*":
                sub.wildcard = True
            elif name not in sub.names:
                sub.names.add(name)
                added.add(name)
        for name in unsubscribe:
            if name == "*":
                sub.wildcard = False
            else:
                sub.names.discard(name)
                added.discard(name)
                sub.known.pop(name, None)  # the client drops it; a resubscribe must resend
        return added

    def _delta_answer(self, stream, url, sub, added, unsubscribed, new_wildcard):
        """Answer a subscription change: newly wanted resources the client lacks, and
        'removed' for wanted names that do not exist (the Delta non-existence signal)."""
        state = self._type_for(stream, url)
        candidates = set(added)
        if new_wildcard:
            candidates |= set(state.resources)
        # Unsubscribing an explicit name while wildcard remains: say that it stays.
        candidates |= {n for n in unsubscribed if sub.wildcard and n in state.resources}
        # On reconnect the client may hold resources we have deleted meanwhile.
        stale = {n for n in sub.known if n not in state.resources and sub.wants(n)}
        send = sorted(n for n in candidates
                      if n in state.resources and state.resources[n][0] != sub.known.get(n))
        removed = sorted((set(added) - set(state.resources)) | stale)
        self._delta_send(stream, url, sub, send, removed)

    def _delta_send(self, stream, url, sub, names, removed):
        if not names and not removed:
            return
        state = self._type_for(stream, url)
        items = [(n, *state.resources[n]) for n in names]
        for name, version, _ in items:
            sub.known[name] = version
        for name in removed:
            sub.known.pop(name, None)
        self._send(stream, url, state.version, items, removed)

    # -- control-plane pushes -----------------------------------------------------------------

    def set_resources(self, url, version, objs, removed, node=None):
        parsed = [parse_resource(obj, url) for obj in objs]  # validate before touching state
        for name, packed in parsed:
            if packed.type_url != url:
                raise BadRequest(f"resource {name!r} is {packed.type_url}, not {url}")
        names = [name for name, _ in parsed]
        if len(set(names)) != len(names):
            raise BadRequest("duplicate resource names (use /raw to send duplicates)")
        with self.lock:
            state = self._type(url, node)
            old = state.resources
            new = {} if url in COMPLETE_STATE_TYPES else dict(old)
            changed = []
            for name, packed in parsed:
                if name in old and old[name][1] == packed:
                    new[name] = old[name]  # same bytes: keep the version the client holds
                else:
                    new[name] = (version, packed)
                    changed.append(name)
            for name in removed:
                new.pop(name, None)
            deleted = sorted(set(old) - set(new))
            state.resources, state.version = new, version
            self._write_log("push", {"type": url, "version": version, "node": node,
                                     "changed": changed, "deleted": deleted})
            for stream in list(self.streams.values()):
                if self._type_for(stream, url) is state:
                    self._push(stream, url, changed, deleted)
            return {"changed": changed, "deleted": deleted}

    def _push(self, stream, url, changed, deleted):
        sub = stream.subs.get(url)
        if sub is None:
            return  # the stream never asked for this type
        if stream.mode == "sotw":
            self._sotw_respond(stream, url, sub, changed_names=set(changed) | set(deleted))
            return
        names = sorted(n for n in changed if sub.wants(n)
                       and self._type_for(stream, url).resources[n][0] != sub.known.get(n))
        removed = sorted(n for n in deleted if n in sub.names or n in sub.known)
        self._delta_send(stream, url, sub, names, removed)

    def push_raw(self, url, version, objs):
        """Send exactly these resources to every stream subscribed to the type (duplicates and
        invalid content included); stored state is untouched."""
        items = [(name, version, packed) for name, packed in
                 (parse_resource(obj, url) for obj in objs)]
        with self.lock:
            sent = 0
            for stream in list(self.streams.values()):
                if url in stream.subs:
                    self._send(stream, url, version, items)
                    sent += 1
            return {"streams": sent}


# ---------------------------------------------------------------------------------------------
# gRPC side


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, state):
        self.state = state

    def StreamAggregatedResources(self, request_iterator, context):
        return self._serve(request_iterator, context, "sotw", self.state.on_sotw_request)

    def DeltaAggregatedResources(self, request_iterator, context):
        return self._serve(request_iterator, context, "delta", self.state.on_delta_request)

    def _serve(self, request_iterator, context, mode, handle):
        """Requests are read on a separate thread; this generator yields queued responses.
        Pushes from the control API land in the same queue."""
        stream = self.state.open_stream(mode)
        context.add_callback(lambda: stream.queue.put(None))  # RPC ended or was cancelled
        reader = threading.Thread(target=self._read, args=(request_iterator, stream, handle),
                                  daemon=True)
        reader.start()
        try:
            while True:
                response = stream.queue.get()
                if response is None:
                    return
                yield response
        finally:
            self.state.close_stream(stream)

    def _read(self, request_iterator, stream, handle):
        try:
            for request in request_iterator:
                handle(stream, request)
        except grpc.RpcError:
            pass  # client went away or the server was stopped
        finally:
            self.state.close_stream(stream)


class GrpcServer:
    """A stoppable/restartable gRPC server on a fixed address (grpc.Server cannot restart)."""

    def __init__(self, address, state):
        self.address = address
        self.state = state
        self.server = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.server is not None:
                return
            server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=64),
                options=[("grpc.max_send_message_length", MAX_MESSAGE),
                         ("grpc.max_receive_message_length", MAX_MESSAGE)])
            ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
                AdsServicer(self.state), server)
            if server.add_insecure_port(self.address) == 0:
                raise RuntimeError(f"cannot listen on {self.address}")
            server.start()
            self.server = server

    def stop(self):
        with self.lock:
            if self.server is None:
                return
            # grace=0 cancels every open RPC, so clients see the stream fail and reconnect.
            self.server.stop(grace=0).wait()
            self.server = None


# ---------------------------------------------------------------------------------------------
# Control API


def make_handler(state, grpc_server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass  # keep the test's stderr quiet; --log has the protocol trace

        def _reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError as error:
                raise BadRequest(f"invalid JSON: {error}")
            if not isinstance(body, dict):
                raise BadRequest("body must be a JSON object")
            return body

        def _dispatch(self, routes):
            route = routes.get(self.path.split("?")[0])
            if route is None:
                self._reply(404, {"error": f"no route {self.command} {self.path}"})
                return
            try:
                self._reply(200, route())
            except BadRequest as error:
                self._reply(400, {"error": str(error)})
            except Exception as error:  # surface server bugs to the test instead of hanging
                self._reply(500, {"error": f"{type(error).__name__}: {error}"})

        def do_GET(self):
            self._dispatch({
                "/requests": lambda: state.snapshot("requests"),
                "/responses": lambda: state.snapshot("responses"),
                "/streams": lambda: {"open": state.open_count()},
            })

        def do_POST(self):
            self._dispatch({
                "/resources": self._post_resources,
                "/raw": self._post_raw,
                "/stop": lambda: grpc_server.stop() or {"ok": True},
                "/start": lambda: grpc_server.start() or {"ok": True},
                "/reset-log": lambda: state.reset_log() or {"ok": True},
            })

        def _push_args(self):
            body = self._body()
            version = body.get("version")
            resources = body.get("resources", [])
            if not isinstance(version, str):
                raise BadRequest("'version' must be a string")
            if not isinstance(resources, list):
                raise BadRequest("'resources' must be a list")
            return body, type_url(body.get("type")), version, resources

        def _post_resources(self):
            body, url, version, resources = self._push_args()
            removed = body.get("removed", [])
            if not isinstance(removed, list) or not all(isinstance(n, str) for n in removed):
                raise BadRequest("'removed' must be a list of names")
            node = body.get("node")
            if node is not None and not isinstance(node, str):
                raise BadRequest("'node' must be a node id")
            return state.set_resources(url, version, resources, removed, node)

        def _post_raw(self):
            _, url, version, resources = self._push_args()
            return state.push_raw(url, version, resources)

    return Handler


def split_address(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def main():
    # The test runner may start us with SIGTERM ignored or blocked; we must die on it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc", required=True, help="HOST:PORT for ADS")
    parser.add_argument("--control", required=True, type=split_address, help="HOST:PORT")
    parser.add_argument("--log", help="append a JSON-lines protocol trace to this file")
    args = parser.parse_args()
    split_address(args.grpc)  # validate early; grpc takes the string as is

    load_all_protos()
    state = XdsState(args.log)
    grpc_server = GrpcServer(args.grpc, state)
    grpc_server.start()
    http = ThreadingHTTPServer(args.control, make_handler(state, grpc_server))
    http.daemon_threads = True
    print("ready", flush=True)
    try:
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        grpc_server.stop()


if __name__ == "__main__":
    sys.exit(main())
