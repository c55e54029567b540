import SluiceModel
import SluiceProxy
import SluiceXDSTypes

/// `/clusters` in Envoy's text and JSON forms.
///
/// Sluice has no per-host request counters (it is an L4 proxy) and no outlier detector, so the
/// `rq_*` stats are 0 and success rates -1, exactly what Envoy prints for such a host. Circuit
/// breaker and outlier lines are left out: Sluice has neither, and inventing Envoy's default
/// thresholds would misreport limits that are not enforced.
enum ClustersFormatter {
    /// What the formatter needs of a cluster; tests build it from plain `UpstreamHost`s.
    struct Cluster {
        var name: String
        var hosts: [UpstreamHost]
    }

    static func snapshot(_ manager: ClusterManager) -> [Cluster] {
        manager.allClusters.map { Cluster(name: $0.config.name, hosts: $0.allHosts) }
    }

    /// Envoy's host stats, sorted by name as Envoy prints them.
    static func hostStats(_ host: UpstreamHost) -> [(name: String, value: UInt64, isGauge: Bool)] {
        [
            ("cx_active", UInt64(clamping: host.connectionsActive.value), true),
            ("cx_connect_fail", host.connectFailures.value, false),
            ("cx_total", host.connectionsTotal.value, false),
            ("rq_active", 0, true),
            ("rq_error", 0, false),
            ("rq_success", 0, false),
            ("rq_timeout", 0, false),
            ("rq_total", 0, false),
        ]
    }

    /// Envoy's `health_flags`: `healthy`, or every failing flag prefixed by `/`.
    static func healthFlags(_ health: HealthStatus) -> String {
        switch health {
        case .unknown, .healthy: return "healthy"
        case .unhealthy, .timeout: return "/failed_eds_health"
        case .degraded: return "/degraded_eds_health"
        case .draining: return "/eds_status_draining"
        }
    }

    static func text(_ clusters: [Cluster]) -> String {
        var output = ""
        for cluster in clusters {
            let name = cluster.name
            output += "\(name)::observability_name::\(name)\n"
            output += "\(name)::added_via_api::false\n"
            for host in cluster.hosts {
                let prefix = "\(name)::\(host.address)::"
                for stat in hostStats(host) { output += "\(prefix)\(stat.name)::\(stat.value)\n" }
                output += "\(prefix)hostname::\(host.hostname ?? "")\n"
                output += "\(prefix)health_flags::\(healthFlags(host.health))\n"
                output += "\(prefix)weight::\(host.weight)\n"
                output += "\(prefix)region::\(host.locality.region)\n"
                output += "\(prefix)zone::\(host.locality.zone)\n"
                output += "\(prefix)sub_zone::\(host.locality.subZone)\n"
                output += "\(prefix)canary::false\n"
                output += "\(prefix)priority::\(host.priority)\n"
                output += "\(prefix)success_rate::-1\n"
                output += "\(prefix)local_origin_success_rate::-1\n"
            }
        }
        return output
    }

    static func message(_ clusters: [Cluster]) -> Envoy_Admin_V3_Clusters {
        var message = Envoy_Admin_V3_Clusters()
        message.clusterStatuses = clusters.map { cluster in
            var status = Envoy_Admin_V3_ClusterStatus()
            status.name = cluster.name
            status.observabilityName = cluster.name
            status.addedViaApi = false
            status.hostStatuses = cluster.hosts.map(hostStatus)
            return status
        }
        return message
    }

    private static func hostStatus(_ host: UpstreamHost) -> Envoy_Admin_V3_HostStatus {
        var status = Envoy_Admin_V3_HostStatus()
        status.address = AdminProto.address(host.address)
        status.hostname = host.hostname ?? ""
        status.stats = hostStats(host).map { stat in
            var metric = Envoy_Admin_V3_SimpleMetric()
            metric.name = stat.name
            metric.value = stat.value
            metric.type = stat.isGauge ? .gauge : .counter
            return metric
        }
        var health = Envoy_Admin_V3_HostHealthStatus()
        // Envoy reports the EDS status it acted on; "unknown" counts as healthy there too.
        switch host.health {
        case .unknown, .healthy: health.edsHealthStatus = .healthy
        case .unhealthy, .timeout: health.edsHealthStatus = .unhealthy
        case .draining: health.edsHealthStatus = .draining
        case .degraded: health.edsHealthStatus = .degraded
        }
        status.healthStatus = health
        status.weight = host.weight
        status.priority = UInt32(clamping: host.priority)
        var locality = Envoy_Config_Core_V3_Locality()
        locality.region = host.locality.region
        locality.zone = host.locality.zone
        locality.subZone = host.locality.subZone
        status.locality = locality
        return status
    }
}
