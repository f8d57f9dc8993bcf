//! Links `berth` as a position-dependent executable, as berth-monitor is
//! (see its build.rs): every command is a short-lived process, and a
//! position-independent one has the loader apply ~30,000 relocations and
//! dirty ~0.5 MiB of .data.rel.ro before `main`, most of a millisecond
//! of each `berth run`.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
