// Migrations are embedded by refinery's macro; rebuild when they change so the binary never
// carries stale ones.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
