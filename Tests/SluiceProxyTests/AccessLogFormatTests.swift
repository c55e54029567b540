import NIOHTTP1
import SluiceModel
@testable import SluiceProxy
import Testing

@Suite struct AccessLogFormatTests {
    /// 2026-11-23T03:44:13.123456789Z.
    private let start = WallClockTime(secondsSinceEpoch: 1_795_405_453, nanoseconds: 123_456_789)

    private var entry: AccessLogEntry {
        let request = FilterTestRequest.make(
            path: "/api?x=1", headers: [("user-agent", "curl/8.5.0"), ("x-request-id", "abc"), ("x-long", "0123456789")],
            remote: "10.0.0.1:40000", local: "10.0.0.9:8080")
        return AccessLogEntry(
            request: request, startTime: start, requestDuration: .milliseconds(2), responseDuration: .microseconds(9_900),
            duration: .microseconds(12_700), responseCode: 200, responseCodeDetails: "via_upstream", bytesReceived: 0,
            bytesSent: 512, responseHeaders: HTTPHeaders([("x-envoy-upstream-service-time", "10")]),
            responseTrailers: HTTPHeaders([("grpc-status", "0")]), upstreamHost: SocketEndpoint("10.0.0.5:80"),
            upstreamCluster: "backend", routeName: "default")
    }

    @Test func defaultFormatMatchesEnvoy() throws {
        let line = try AccessLogFormatter(.defaultText).line(entry)
        #expect(line == "[2026-11-23T03:44:13.123Z] \"GET /api?x=1 HTTP/1.1\" 200 - 0 512 12 10 \"-\" \"curl/8.5.0\" \"abc\" "
            + "\"example.com\" \"10.0.0.5:80\"\n")
    }

    @Test func originalPathWinsWhenPresent() throws {
        var rewritten = entry
        rewritten.request?.headers.add(name: "x-envoy-original-path", value: "/before")
        let format = try FormatString("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%")
        #expect(format.format(rewritten) == "/before")
        #expect(format.format(entry) == "/api?x=1")
        #expect(try FormatString("%REQ_WITHOUT_QUERY(:PATH)%").format(entry) == "/api")
    }

    @Test func operatorsAndMissingValues() throws {
        let format = try FormatString(
            "%UPSTREAM_CLUSTER% %ROUTE_NAME% %RESPONSE_CODE_DETAILS% %DOWNSTREAM_REMOTE_ADDRESS% "
                + "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS% "
                + "%REQUESTED_SERVER_NAME% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_TRANSPORT_FAILURE_REASON% "
                + "%REQUEST_DURATION% %RESPONSE_DURATION% %TRAILER(GRPC-STATUS)% %RESP(X-MISSING)% 100%% %PROTOCOL%")
        #expect(format.format(entry) == "backend default via_upstream 10.0.0.1:40000 10.0.0.1 10.0.0.9:8080 10.0.0.1:40000 "
            + "- - - 2 9 0 - 100% HTTP/1.1")
    }

    @Test func startTimeFormats() throws {
        #expect(try FormatString("%START_TIME(%Y/%m/%d %H:%M:%S %z)%").format(entry) == "2026/11/23 03:44:13 +0000")
        #expect(try FormatString("%START_TIME(%s.%3f|%E6S|%6f|%f)%").format(entry) == "1795405453.123|13.123456|123456|123456789")
        #expect(try FormatString("%START_TIME(%a %b %e %j)%").format(entry) == "Mon Nov 23 327")
    }

    @Test func truncation() throws {
        #expect(try FormatString("%REQ(X-LONG):4%|%REQ(X-MISSING):4%").format(entry) == "0123|-")
        #expect(FormatString.truncated("aé", 2) == "a")
    }

    @Test func responseFlagsPrintInEnvoyOrder() throws {
        var flagged = entry
        flagged.responseFlags = [.upstreamRetryLimitExceeded, .noHealthyUpstream, .upstreamConnectionFailure]
        #expect(try FormatString("%RESPONSE_FLAGS% %RESPONSE_FLAGS_LONG%").format(flagged)
            == "UH,UF,URX NoHealthyUpstream,UpstreamConnectionFailure,UpstreamRetryLimitExceeded")
        #expect(ResponseFlags([]).shortString == "-")
        #expect(ResponseFlags(shortName: "DPE") == .downstreamProtocolError)
        #expect(ResponseFlags([.delayInjected, .faultInjected, .rateLimited]).shortString == "DI,FI,RL")
    }

    @Test func jsonFormatTypesValues() throws {
        let formatter = try AccessLogFormatter(.json([
            "status": "%RESPONSE_CODE%", "bytes": "%BYTES_SENT%", "host": "%UPSTREAM_HOST%", "sni": "%REQUESTED_SERVER_NAME%",
            "path": "%REQ(:PATH)%", "msg": "took %DURATION%ms \"quoted\"", "time": "%START_TIME%",
        ]))
        #expect(formatter.line(entry) == #"{"bytes":512,"host":"10.0.0.5:80","msg":"took 12ms \"quoted\"","path":"/api?x=1","#
            + #""sni":null,"status":200,"time":"2026-11-23T03:44:13.123Z"}"# + "\n")
    }

    @Test func deprecatedJSONFormatPrintsStrings() throws {
        let formatter = try AccessLogFormatter(.untypedJSON(["status": "%RESPONSE_CODE%", "sni": "%REQUESTED_SERVER_NAME%"]))
        #expect(formatter.line(entry) == #"{"sni":"-","status":"200"}"# + "\n")
    }

    @Test func longOperatorNamesAreAliases() throws {
        #expect(try FormatString("%REQUEST_HEADER(:METHOD)% %RESPONSE_HEADER(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
            + "%RESPONSE_TRAILER(GRPC-STATUS)%").format(entry) == "GET 10 0")
    }

    @Test func requestOnlyContextForHeaderValues() throws {
        let request = FilterTestRequest.make(remote: "192.168.1.2:5555")
        let context = AccessLogEntry.requestOnly(request)
        let format = try FormatString("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%")
        #expect(format.format(context, omitEmptyValues: true) == "192.168.1.2")
        #expect(try FormatString("%RESP(X-A)%%UPSTREAM_HOST%").format(context, omitEmptyValues: true) == "")
        #expect(try FormatString("%RESP(X-A)%").format(context) == "-")
        #expect(try FormatString("%RESPONSE_CODE%").format(context) == "0")
    }

    @Test func errorsNameTheOperator() {
        #expect(throws: AccessLogFormatError(format: "a %UPSTREAM_SERVICE_TIME% b", position: 2,
                                             problem: .unknownOperator("UPSTREAM_SERVICE_TIME"))) {
            _ = try FormatString("a %UPSTREAM_SERVICE_TIME% b")
        }
        do {
            _ = try FormatString("%FOO%")
            Issue.record("accepted %FOO%")
        } catch {
            #expect(error.description.contains("%FOO%"))
        }
        #expect(throws: AccessLogFormatError.self) { _ = try FormatString("%REQ%") }
        #expect(throws: AccessLogFormatError.self) { _ = try FormatString("%REQ(a?b?c)%") }
        #expect(throws: AccessLogFormatError.self) { _ = try FormatString("%PROTOCOL(x)%") }
        #expect(throws: AccessLogFormatError.self) { _ = try FormatString("50% off") }
        #expect(throws: AccessLogFormatError.self) { _ = try FormatString("%START_TIME") }
        #expect(throws: AccessLogFormatError.self) { _ = try AccessLogFormatter(.json(["k": "%NOPE%"])) }
    }
}
