//! End-to-end runs of the kvexec binary against the emulator over TLS on 127.0.0.1.

mod common;

use common::{demo, secret_url, Kvexec};

#[test]
fn smoke_resolves_demo_secret() {
    let emulator = common::demo_emulator();
    let outcome = Kvexec::new(&emulator)
        .env("DB_PASSWORD", secret_url(demo::PASSWORD_SECRET))
        .env("KVEXEC_LOG", "trace")
        .report_env()
        .run();
    eprintln!("{}", outcome.stderr_text());
    outcome.assert_success().assert_var("DB_PASSWORD", demo::PASSWORD_VALUE);
    eprintln!("{:?}", emulator.stats());
}
