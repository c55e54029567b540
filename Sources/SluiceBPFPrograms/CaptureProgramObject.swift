import Foundation

/// The compiled eBPF capture object (ELF), built from `bpf/sluice_capture.bpf.c` for the kernel
/// the package was built on and embedded by the BPFObjectBuilder plugin.
public enum CaptureProgramObject {
    /// The ELF bytes libbpf loads.
    public static var bytes: [UInt8] {
        guard let data = Data(base64Encoded: base64) else { preconditionFailure("embedded eBPF object is not base64") }
        return [UInt8](data)
    }

    /// `uname -r` of the machine the object was compiled on.
    public static var builtForKernel: String { kernelRelease }
}
