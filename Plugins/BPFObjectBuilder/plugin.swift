import Foundation
import PackagePlugin

/// Compiles `bpf/sluice_capture.bpf.c` for the bpf target (against the running kernel's BTF)
/// and embeds the object in the target as generated Swift.
@main
struct BPFObjectBuilder: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let script = bpfDirectory.appending(path: "build.sh")
        let source = bpfDirectory.appending(path: "sluice_capture.bpf.c")
        let output = context.pluginWorkDirectoryURL.appending(path: "CaptureProgramObject+Bytes.swift")
        let clang = (try? context.tool(named: "clang").url.path) ?? ""
        return [
            .buildCommand(
                displayName: "Compiling eBPF capture programs",
                executable: URL(fileURLWithPath: "/bin/bash"),
                arguments: [script.path, source.path, output.path, context.pluginWorkDirectoryURL.appending(path: "bpf").path, clang],
                inputFiles: [script, source],
                outputFiles: [output])
        ]
    }
}
