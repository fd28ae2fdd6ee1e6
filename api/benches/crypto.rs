//! Encryption at rest, per value: a 1.5 KB access token (Microsoft's are
//! 1.5-2.5 KB) and a 40-character client secret, sealed and opened with the
//! associated data of a real row. Run by `scripts/bench.sh`, which reads the
//! estimates criterion writes under `target/criterion/`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use inboxlink::crypto::{Cipher, MasterKey, Slot};

fn crypto(c: &mut Criterion) {
    // Two keys, as during a rotation: the first seals, both open.
    let cipher = Cipher::new(&[MasterKey::new([7; 32]), MasterKey::new([9; 32])]);
    let slot = Slot {
        table: "mailboxes",
        column: "access_token",
        row_id: "01a2c3d4-0000-7000-8000-000000000000",
    };
    for (name, value) in [
        ("token_1500", "t".repeat(1500)),
        ("secret_40", "s".repeat(40)),
    ] {
        let sealed = cipher.encrypt_str(&value, slot);
        c.bench_function(&format!("encrypt_{name}"), |b| {
            b.iter(|| cipher.encrypt_str(black_box(&value), slot))
        });
        c.bench_function(&format!("decrypt_{name}"), |b| {
            b.iter(|| cipher.decrypt(black_box(&sealed), slot).expect("opens"))
        });
    }
}

criterion_group!(benches, crypto);
criterion_main!(benches);
