import Foundation
import Logging
import NIOHTTP1
import SluiceProxy
import SluiceXDSTypes

/// Maps admin requests to responses. Paths match exactly (the query is not part of the path),
/// and the wording of help, errors and `/ready` follows Envoy's admin so scripts written for
/// Envoy keep working.
struct AdminRouter: Sendable {
    let context: AdminContext
    let logger: Logger

    /// One admin endpoint as listed by `/help`.
    struct Endpoint: Sendable {
        var path: String
        var help: String
        /// Endpoints that change server state need POST and a privileged peer.
        var mutatesState = false
    }

    static let endpoints: [Endpoint] = [
        Endpoint(path: "/clusters", help: "upstream cluster status"),
        Endpoint(path: "/config_dump", help: "dump current Envoy configs"),
        Endpoint(path: "/help", help: "print out list of admin commands"),
        Endpoint(path: "/listeners", help: "print listener info"),
        Endpoint(path: "/quitquitquit", help: "exit the server", mutatesState: true),
        Endpoint(path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503"),
        Endpoint(path: "/sluice/workloads", help: "enrolled workloads with their capture listeners and counters (JSON)"),
        Endpoint(path: "/stats", help: "print server stats"),
        Endpoint(path: "/stats/prometheus", help: "print server stats in prometheus format"),
    ]

    /// Envoy's help text: `admin commands are:` then one indented line per path.
    static var helpText: String {
        var text = "admin commands are:\n"
        for endpoint in endpoints {
            text += "  \(endpoint.path)\(endpoint.mutatesState ? " (POST)" : ""): \(endpoint.help)\n"
        }
        return text
    }

    func respond(to request: AdminRequest) -> AdminResponse {
        guard let endpoint = Self.endpoints.first(where: { $0.path == request.path }) ?? rootEndpoint(request) else {
            return AdminResponse(.notFound, "invalid path. " + Self.helpText)
        }
        if endpoint.mutatesState, request.method != .POST {
            return AdminResponse(.methodNotAllowed, "Method \(request.method.rawValue) not allowed, POST required.")
        }
        if endpoint.mutatesState || request.method == .POST, !request.peerIsPrivileged {
            logger.warning("admin request refused: peer may not change server state", metadata: ["path": "\(request.path)"])
            return AdminResponse(.forbidden, "state-changing admin requests are accepted only from loopback or from root or this user on the admin socket\n")
        }
        switch endpoint.path {
        case "/", "/help": return AdminResponse(Self.helpText)
        case "/ready": return ready()
        case "/stats": return stats(request)
        case "/stats/prometheus": return prometheus(request)
        case "/config_dump": return configDump(request)
        case "/listeners": return listeners(request)
        case "/clusters": return clusters(request)
        case "/quitquitquit": return quit()
        case "/sluice/workloads": return workloads()
        default: return AdminResponse(.notFound, "invalid path. " + Self.helpText)
        }
    }

    /// Envoy's `/` is an HTML console; Sluice answers it with the help text.
    private func rootEndpoint(_ request: AdminRequest) -> Endpoint? {
        request.path == "/" ? Endpoint(path: "/", help: "") : nil
    }

    private func ready() -> AdminResponse {
        context.proxy.isReady ? AdminResponse("LIVE\n") : AdminResponse(.serviceUnavailable, "PRE_INITIALIZING\n")
    }

    private func stats(_ request: AdminRequest) -> AdminResponse {
        switch request.parameter("format") {
        case nil, "text":
            return withSelection(request) { AdminResponse(StatsFormatter.text($0)) }
        case "json":
            return withSelection(request) { AdminResponse(contentType: AdminResponse.json, StatsFormatter.json($0)) }
        case "prometheus":
            return prometheus(request)
        case let other?:
            return AdminResponse(.badRequest, "usage: /stats?format=(json|prometheus|text); unsupported format \(other)\n")
        }
    }

    private func prometheus(_ request: AdminRequest) -> AdminResponse {
        withSelection(request) { AdminResponse(contentType: AdminResponse.prometheus, PrometheusFormatter.render($0)) }
    }

    private func withSelection(_ request: AdminRequest, _ render: ([StatEntry]) -> AdminResponse) -> AdminResponse {
        do {
            let selection = try StatsSelection(request: request)
            return render(selection.apply(context.proxy.stats.snapshot()))
        } catch {
            return AdminResponse(.badRequest, error.message + "\n")
        }
    }

    private func configDump(_ request: AdminRequest) -> AdminResponse {
        let source = ConfigDumpBuilder.Source(
            bootstrap: context.bootstrap.bootstrap, loadedAt: context.startTime, xds: context.xds?.current,
            includeEndpoints: request.parameter("include_eds") != nil)
        do {
            let dump: Envoy_Admin_V3_ConfigDump
            if let resource = request.parameter("resource"), !resource.isEmpty {
                switch try ConfigDumpBuilder.resource(resource, source) {
                case .success(let value): dump = value
                case .failure(let failure):
                    return AdminResponse(HTTPResponseStatus(statusCode: failure.status), failure.message)
                }
            } else {
                dump = try ConfigDumpBuilder.full(source)
            }
            return AdminResponse(contentType: AdminResponse.json, try AdminProto.json(dump))
        } catch {
            logger.error("config dump failed", metadata: ["error": "\(error)"])
            return AdminResponse(.internalServerError, "cannot encode config dump: \(error)\n")
        }
    }

    private func listeners(_ request: AdminRequest) -> AdminResponse {
        let host = context.proxy.hostListenerAddresses
        if request.parameter("format") == "json" {
            return encoded { try AdminProto.json(ListenersFormatter.message(host: host)) }
        }
        return AdminResponse(ListenersFormatter.text(host: host, workloads: context.proxy.workloadStatuses))
    }

    private func clusters(_ request: AdminRequest) -> AdminResponse {
        let clusters = ClustersFormatter.snapshot(context.proxy.clusters)
        if request.parameter("format") == "json" {
            return encoded { try AdminProto.json(ClustersFormatter.message(clusters)) }
        }
        return AdminResponse(ClustersFormatter.text(clusters))
    }

    private func workloads() -> AdminResponse {
        encoded {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return String(decoding: try encoder.encode(context.proxy.workloadStatuses), as: UTF8.self)
        }
    }

    private func quit() -> AdminResponse {
        logger.notice("shutdown requested through /quitquitquit")
        let requestShutdown = context.requestShutdown
        // Envoy answers before it exits; so does Sluice, off the admin event loop so that a
        // shutdown that stops this server cannot wait on the thread running it.
        return AdminResponse("OK\n", afterSend: { Task.detached { requestShutdown() } })
    }

    private func encoded(_ body: () throws -> String) -> AdminResponse {
        do {
            return AdminResponse(contentType: AdminResponse.json, try body())
        } catch {
            logger.error("admin JSON encoding failed", metadata: ["error": "\(error)"])
            return AdminResponse(.internalServerError, "cannot encode response: \(error)\n")
        }
    }
}
