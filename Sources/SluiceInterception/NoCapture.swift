import SluiceModel

/// The `none` mode: nothing is captured. The proxy still serves the workload's listeners
/// inside its namespace, and the application addresses one of them itself (a listener bound
/// to a local port per upstream service, the "lightweight client" model). It is the baseline
/// that shows what capture itself costs.
public struct NoCapture: CaptureMode {
    public let name = CaptureModeName.none

    public init() {}

    public func install(_ target: CaptureTarget) throws {}
    public func remove(_ target: CaptureTarget) throws {}
    /// Nothing to install is always fully installed.
    public func verify(_ target: CaptureTarget) throws -> CaptureVerification { .installed }
}
