import Foundation
import SluiceLinux

/// What `sluice enroll|unenroll|workloads` use to talk to the agent.
public enum AgentControlClient {
    /// Sends one control request and returns the agent's result.
    public static func send(_ message: AgentMessage, socketPath: String, timeout: Duration = .seconds(30)) throws -> ControlResult {
        let socket: SeqpacketSocket
        do {
            socket = try SeqpacketSocket.connect(path: socketPath)
        } catch {
            throw AgentError("cannot reach the agent at \(socketPath) (is `sluice agent` or `sluice up` running?): \(error)")
        }
        let connection = AgentConnection(socket: socket)
        defer { connection.close() }
        try connection.send(.hello(Hello(role: .control)), requestID: 1)
        try expectAnswer(connection, timeout: timeout) { message in
            if case .helloAck = message { return true }
            return false
        }
        try connection.send(message, requestID: 2)
        var result: ControlResult?
        try expectAnswer(connection, timeout: timeout) { message in
            if case .result(let value) = message {
                result = value
                return true
            }
            return false
        }
        return result!
    }

    private static func expectAnswer(
        _ connection: AgentConnection, timeout: Duration, _ accept: (AgentMessage) -> Bool
    ) throws {
        guard connection.socket.waitReadable(timeout: timeout) else {
            throw AgentError("the agent did not answer within \(timeout)")
        }
        guard let frame = try connection.receive() else { throw AgentError("the agent closed the connection") }
        if case .failure(let failure) = frame.message { throw AgentError("the agent refused: \(failure.message)") }
        guard accept(frame.message) else { throw AgentProtocolError.unexpected("\(frame.message)") }
    }
}
