//! Link settings of the binaries that Cargo has no key for.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Relative relocations packed (DT_RELR): a position-independent Rust
    // binary carries some 15,000 of them (vtables, string slices in static
    // data), 24 bytes each in classic RELA form. The loader reads all of
    // them at every start, so about 370 kB of the file stayed resident in
    // an idle daemon; packed they take a few kB. It needs glibc 2.36 or
    // later where the binary runs (Debian 12, Ubuntu 22.10, Fedora 37);
    // the loader refuses an older one by name (GLIBC_ABI_DT_RELR).
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-linux-gnu") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
