fn main() {
    std::process::exit(dmb::cli::main());
}
