import SluiceModel
import SluiceXDSTypes
import SwiftProtobuf

/// Shared helpers for admin output built from Envoy's generated admin types.
enum AdminProto {
    /// Envoy's admin JSON: proto field names (snake_case), compact.
    static func json(_ message: some SwiftProtobuf.Message) throws -> String {
        EnvoyMessageRegistry.registerAllForAny()
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return try message.jsonString(options: options)
    }

    static func address(_ endpoint: SocketEndpoint) -> Envoy_Config_Core_V3_Address {
        var socket = Envoy_Config_Core_V3_SocketAddress()
        socket.address = endpoint.address.description
        socket.portValue = UInt32(endpoint.port)
        var address = Envoy_Config_Core_V3_Address()
        address.socketAddress = socket
        return address
    }
}
