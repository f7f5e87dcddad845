//! Cost per resource of the write path's CPU work: parse + validate (fhir-sdk), RFC 8785
//! canonicalisation, HMAC commitment, AES-256-GCM envelope encryption and the CID hash, and the
//! blind search index tags, over the resources of a Synthea patient bundle. I/O (blob fsync, SQLite) is measured by the load test.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn resources() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/fhir/synthea/Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json");
    let bundle: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn write_path(c: &mut Criterion) {
    let rs = resources();
    let owner = medledger_crypto::Key::generate();
    let mut g = c.benchmark_group("write_path");
    g.throughput(Throughput::Elements(rs.len() as u64));
    g.bench_function(
        "parse+validate+canonicalise+commit+encrypt+cid per bundle",
        |b| {
            b.iter(|| {
                for r in &rs {
                    let rt = medledger_fhir::validate_resource(r).unwrap();
                    let canonical = medledger_fhir::canonical_json(r);
                    let salt = medledger_crypto::new_salt();
                    let commitment = medledger_crypto::commitment(&salt, &canonical);
                    let aad = medledger_crypto::version_aad(&rt, "id", 1, "Patient/p");
                    let sealed = medledger_crypto::seal_version(&owner, &aad, &salt, &canonical);
                    let cid =
                        medledger_blobstore::Cid::of(medledger_blobstore::cid::RAW, &sealed.blob);
                    std::hint::black_box((commitment, cid));
                }
            })
        },
    );
    g.bench_function(
        "validate only (fhir-sdk parse + unknown-element check) per bundle",
        |b| {
            b.iter(|| {
                for r in &rs {
                    std::hint::black_box(medledger_fhir::validate_resource(r).unwrap());
                }
            })
        },
    );
    let index_key = medledger_search::IndexKey::derive(&owner, 1);
    g.bench_function("blind index tags per bundle", |b| {
        b.iter(|| {
            let mut n = 0;
            for r in &rs {
                let rt = r["resourceType"].as_str().unwrap();
                n += medledger_search::index_tags(std::slice::from_ref(&index_key), rt, r).len();
            }
            std::hint::black_box(n)
        })
    });
    let tags: usize = rs
        .iter()
        .map(|r| {
            medledger_search::index_tags(
                std::slice::from_ref(&index_key),
                r["resourceType"].as_str().unwrap(),
                r,
            )
            .len()
        })
        .sum();
    println!("blind index tags: {tags} for {} resources", rs.len());
    g.finish();
}

criterion_group!(benches, write_path);
criterion_main!(benches);
