#!/usr/bin/env python3
"""A gRPC server and client (grpcio, generic handlers, raw bytes) for the end-to-end tests.

server --port P            serves test.Echo: Unary (echo), ServerStream (n replies), ClientStream
                           (byte count), Bidi (echo each), Fail (status from the request), Slow
                           (sleeps the requested ms); prints "ready".
client --target H:P        runs every call shape, checks payloads, metadata, trailers, status
                           codes and a deadline, prints one JSON summary line.
"""
import argparse
import json
import sys
import time
from concurrent import futures

import grpc

SERVICE = "test.Echo"
identity = lambda b: b


def unary(request, context):
    context.send_initial_metadata((("x-initial", "yes"),))
    context.set_trailing_metadata((("x-trailer", "t-" + str(len(request))),))
    return request


def server_stream(request, context):
    count = int(request.decode() or "1")
    for index in range(count):
        yield (f"reply-{index}:" + "x" * 1000).encode()


def client_stream(request_iterator, context):
    return str(sum(len(chunk) for chunk in request_iterator)).encode()


def bidi(request_iterator, context):
    for chunk in request_iterator:
        yield chunk[::-1]


def fail(request, context):
    code = grpc.StatusCode[request.decode()]
    context.abort(code, "failing as asked: " + request.decode())


def slow(request, context):
    time.sleep(int(request.decode()) / 1000)
    return b"late"


def serve(port):
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, identity, identity),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, identity, identity),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, identity, identity),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, identity, identity),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, identity, identity),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, identity, identity),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def run_client(target, rounds):
    channel = grpc.insecure_channel(target)
    method = lambda kind, name: getattr(channel, kind)(f"/{SERVICE}/{name}", request_serializer=identity, response_deserializer=identity)
    failures = []
    counts = {"unary": 0, "server_stream": 0, "client_stream": 0, "bidi": 0, "status": 0, "deadline": 0}

    def check(condition, what):
        if not condition:
            failures.append(what)

    for index in range(rounds):
        payload = (f"payload-{index}-" + "y" * (index * 997 % 70000)).encode()
        reply, call = method("unary_unary", "Unary").with_call(payload, metadata=(("x-client", "c"),), timeout=10)
        check(reply == payload, f"unary payload {index}")
        check(dict(call.initial_metadata()).get("x-initial") == "yes", "initial metadata")
        check(dict(call.trailing_metadata()).get("x-trailer") == f"t-{len(payload)}", "trailing metadata")
        counts["unary"] += 1

        replies = list(method("unary_stream", "ServerStream")(b"50", timeout=10))
        check(len(replies) == 50 and replies[-1].startswith(b"reply-49:"), "server stream")
        counts["server_stream"] += 1

        total = method("stream_unary", "ClientStream")(iter([b"z" * 40000] * 25), timeout=10)
        check(total == b"1000000", f"client stream {total!r}")
        counts["client_stream"] += 1

        chunks = [f"chunk-{n}".encode() * 10 for n in range(30)]
        echoed = list(method("stream_stream", "Bidi")(iter(chunks), timeout=10))
        check(echoed == [c[::-1] for c in chunks], "bidi")
        counts["bidi"] += 1

    for code in ("NOT_FOUND", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "INTERNAL"):
        try:
            method("unary_unary", "Fail")(code.encode(), timeout=10)
            failures.append(f"{code} did not fail")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode[code], f"status {code} became {error.code()}")
            check("failing as asked" in (error.details() or ""), "status details")
            counts["status"] += 1

    try:
        method("unary_unary", "Slow")(b"3000", timeout=0.5)
        failures.append("deadline not enforced")
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"deadline gave {error.code()}")
        counts["deadline"] += 1
    print(json.dumps({"counts": counts, "failures": failures}), flush=True)
    return 0 if not failures else 1


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "server":
        serve(args.port)
        return 0
    return run_client(args.target, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
