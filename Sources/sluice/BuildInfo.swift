/// Which build of the binary this is: hot-upgrade tests alternate two builds of the same
/// sources (the second compiled with `SLUICE_BUILD_VARIANT=B` in the environment).
enum BuildInfo {
    #if SLUICE_BUILD_VARIANT_B
    static let label = "sluice-B"
    #else
    static let label = "sluice-A"
    #endif
}
