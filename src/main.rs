fn main() -> std::process::ExitCode {
    vip_watchdog::cli::main()
}
