import Foundation
import SluiceConfig
import SluiceProxy

/// Everything the admin API reads, plus the one thing it may ask for: a shutdown.
public struct AdminContext: Sendable {
    public let proxy: ProxyServer
    public let bootstrap: LoadedBootstrap
    /// When the configuration was loaded; reported as `last_updated` in `/config_dump`.
    public let startTime: Date
    /// What xDS delivered, when the bootstrap has `dynamic_resources`.
    public let xds: XDSDumpStore?
    let requestShutdown: @Sendable () -> Void

    /// Wraps the running proxy, its loaded bootstrap and the action `/quitquitquit` triggers.
    public init(
        proxy: ProxyServer,
        bootstrap: LoadedBootstrap,
        startTime: Date,
        xds: XDSDumpStore? = nil,
        requestShutdown: @escaping @Sendable () -> Void
    ) {
        self.proxy = proxy
        self.bootstrap = bootstrap
        self.startTime = startTime
        self.xds = xds
        self.requestShutdown = requestShutdown
    }
}
