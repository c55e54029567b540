import Foundation
import SluiceLinux

extension NodeAgent {
    /// Accepts connections until the listening socket is shut down; one thread per peer.
    func acceptLoop(_ listener: SeqpacketSocket) {
        while true {
            guard let socket = try? listener.accept() else { return }
            Thread { self.serve(AgentConnection(socket: socket)) }.start()
        }
    }

    private func serve(_ connection: AgentConnection) {
        do {
            try connection.requireTrustedPeer()
            // The kernel's word on who the peer is; capture modes hook the proxy's process by it.
            let peerPID = try connection.socket.peerCredentials().pid
            guard let first = try connection.receive() else { return }
            guard case .hello(let hello) = first.message else {
                throw AgentProtocolError.unexpected("the first message must be hello")
            }
            try connection.send(.helloAck(HelloAck(agentPID: getpid())), requestID: first.requestID)
            switch hello.role {
            case .proxy:
                let session = ProxySession(connection: connection, peerPID: peerPID)
                session.startReader(
                    onServiceAddresses: { addresses, requestID in
                        // Off the reader thread: reprogramming takes the operations lock, whose
                        // holder may be waiting for an ack this reader has to deliver.
                        self.serviceUpdates.async {
                            self.proxyServiceAddressesChanged(session, addresses, requestID: requestID)
                        }
                    },
                    onClose: { reason in self.proxyDisconnected(session, reason: reason) })
                proxyConnected(session, serviceAddresses: hello.serviceAddresses ?? [])
            case .control:
                try serveControl(connection)
            }
        } catch {
            logger.warning("agent connection refused", metadata: ["error": "\(error)"])
            try? connection.send(.failure(Failure(message: "\(error)")), requestID: 0)
            connection.close()
        }
    }

    private func serveControl(_ connection: AgentConnection) throws {
        defer { connection.close() }
        while let frame = try connection.receive() {
            let answer: ControlResult
            switch frame.message {
            case .enroll(let request): answer = enroll(request)
            case .unenroll(let request): answer = unenroll(request)
            case .listWorkloads: answer = list()
            default: throw AgentProtocolError.unexpected("control peers may only enroll, unenroll and list")
            }
            try connection.send(.result(answer), requestID: frame.requestID)
        }
    }
}
