import SluiceModel
import SluiceProxy
import SluiceXDSTypes

/// `/listeners` in Envoy's text and JSON forms.
///
/// Host listeners print as Envoy does: `name::address`, one line per bound address (a listener
/// with `additional_addresses` prints several lines). A capture listener exists once per enrolled
/// workload, so its lines carry the workload: `name::address::workload=<id>`. JSON keeps Envoy's
/// schema, where a name identifies one listener, and so lists host listeners only; the
/// per-workload listeners are in `/sluice/workloads`.
enum ListenersFormatter {
    typealias HostListener = (name: String, addresses: [SocketEndpoint])

    static func text(host: [HostListener], workloads: [WorkloadStatus]) -> String {
        var output = ""
        for listener in host {
            for address in listener.addresses { output += "\(listener.name)::\(address)\n" }
        }
        for workload in workloads {
            for listener in workload.listeners {
                for address in listener.addresses {
                    output += "\(listener.name)::\(address)::workload=\(workload.identity.id)\n"
                }
            }
        }
        return output
    }

    static func message(host: [HostListener]) -> Envoy_Admin_V3_Listeners {
        var message = Envoy_Admin_V3_Listeners()
        message.listenerStatuses = host.map { listener in
            var status = Envoy_Admin_V3_ListenerStatus()
            status.name = listener.name
            if let first = listener.addresses.first { status.localAddress = AdminProto.address(first) }
            status.additionalLocalAddresses = listener.addresses.dropFirst().map(AdminProto.address)
            return status
        }
        return message
    }
}
