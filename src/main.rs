#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    latch::cli::main()
}
