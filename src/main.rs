fn main() {
    let code = kvexec::run(std::env::args_os().collect(), kvexec::environment::Environment::from_process());
    std::process::exit(code);
}
