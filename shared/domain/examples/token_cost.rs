//! Length and cost of a link token, version 1 (HMAC-SHA256, readable) against version 2
//! (AES-256-SIV, sealed), for a 30-character email respondent:
//! `cargo run --release -p sondeo-domain --example token_cost`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sondeo_domain::token::{LinkClaims, LinkKeyring};
use std::hint::black_box;
use std::time::Instant;

const SECRET: &str = "0123456789abcdef0123456789abcdef-bench";
const NOW: i64 = 1_790_000_001;

/// A version-1 token, minted as before version 2 (the format the keyring still verifies).
fn sign_v1(c: &LinkClaims) -> String {
    let mut p = vec![1u8];
    for f in ["k1", &c.survey, &c.touchpoint, &c.respondent] {
        p.push(f.len() as u8);
        p.extend_from_slice(f.as_bytes());
    }
    p.extend_from_slice(&(c.issued_at as u32).to_be_bytes());
    p.extend_from_slice(&(c.expires_at as u32).to_be_bytes());
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes())
        .expect("HMAC takes any key length");
    m.update(&p);
    let tag = m.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&p),
        URL_SAFE_NO_PAD.encode(&tag[..16])
    )
}

/// Nanoseconds per call: the best of five runs of `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    (0..n / 10).for_each(|_| f());
    (0..5)
        .map(|_| {
            let t = Instant::now();
            (0..n).for_each(|_| f());
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let ring = LinkKeyring::from_spec(&format!("k1:{SECRET}")).expect("a valid keyring");
    let c = LinkClaims {
        survey: "nps-2026".into(),
        touchpoint: "post-purchase".into(),
        respondent: "maria.fernandez@correo-mail.es".into(),
        issued_at: NOW - 1,
        expires_at: NOW + 30 * 86_400,
    };
    let v1 = sign_v1(&c);
    let v2 = ring.sign(&c).expect("mintable claims");
    assert_eq!(ring.verify(&v1, NOW).as_ref(), Ok(&c));
    assert_eq!(ring.verify(&v2, NOW).as_ref(), Ok(&c));
    let link = |t: &str| format!("https://abcdefghij.lambda-url.us-east-1.on.aws/r/{t}?score=9");
    println!("respondent: {} characters", c.respondent.len());
    for (name, t) in [("v1", &v1), ("v2", &v2)] {
        println!(
            "{name}: token {} characters, link {} characters",
            t.len(),
            link(t).len()
        );
    }
    let n = 200_000;
    let verify = |t: &str| per_call(n, || drop(black_box(ring.verify(black_box(t), NOW))));
    println!("verify v1: {:.0} ns", verify(&v1));
    println!("verify v2: {:.0} ns", verify(&v2));
    println!(
        "mint v1: {:.0} ns",
        per_call(n, || drop(black_box(sign_v1(black_box(&c)))))
    );
    println!(
        "mint v2: {:.0} ns",
        per_call(n, || drop(black_box(ring.sign(black_box(&c)))))
    );
}
