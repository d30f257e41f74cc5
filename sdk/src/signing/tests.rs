use super::*;
use crate::manifest::{embed_manifest, read_manifest};
use crate::wasm::{COMPONENT_VERSION, MAGIC, MODULE_VERSION};

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn trust(keys: &[(&str, &SecretKey)]) -> TrustStore {
    TrustStore::from_keys(
        keys.iter()
            .map(|(n, k)| (n.to_string(), k.public()))
            .collect(),
    )
}

/// A small component: preamble, two opaque sections standing in for code
/// and data, a custom section, and a manifest.
fn component() -> Vec<u8> {
    let mut c = MAGIC.to_vec();
    c.extend_from_slice(&COMPONENT_VERSION);
    c.extend_from_slice(&[1, 6, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
    c.extend_from_slice(&[11, 3, 7, 8, 9]);
    let c = wasm::with_custom_section(&c, "producers", b"trademl test").unwrap();
    embed_manifest(&c, &crate::manifest::tests::sample()).unwrap()
}

/// A minimal core module with a type section and a custom section.
fn module() -> Vec<u8> {
    let mut m = MAGIC.to_vec();
    m.extend_from_slice(&MODULE_VERSION);
    m.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
    wasm::with_custom_section(&m, "name", b"\0\x04demo").unwrap()
}

#[test]
fn round_trip_component_and_module() {
    let k = key(1);
    for file in [component(), module()] {
        let signed = sign(&file, &k).unwrap();
        let v = verify(&signed, &trust(&[("alice", &k)])).unwrap();
        assert_eq!(v.key_name, "alice");
        assert_eq!(v.key_id, k.key_id());
        assert_eq!(v.key_id.len(), 2 * KEY_ID_LEN);
        assert_eq!(v.digest, digest_of_content(&file).unwrap());
        assert_eq!(v.digest, digest_of_content(&signed).unwrap());
        // The signature section is first, and the rest is the original.
        let secs = wasm::sections(&signed).unwrap();
        assert!(secs[0].is_custom(SECTION));
        assert_eq!(&signed[secs[0].range.end..], &file[HEADER_LEN..]);
        assert_eq!(strip_signatures(&signed).unwrap(), file);
        assert_eq!(signer_key_ids(&signed).unwrap(), vec![k.key_id()]);
        let info = signatures(&signed).unwrap();
        assert_eq!(info[0].digests, vec![hex::encode(v.digest)]);
        assert!(signatures(&file).unwrap().is_empty());
    }
    let signed = sign(&component(), &k).unwrap();
    assert_eq!(read_manifest(&signed).unwrap().name, "churn");
}

#[test]
fn section_layout_is_wasmsign2s() {
    let k = key(1);
    let signed = sign(&module(), &k).unwrap();
    let data = wasm::custom_section(&signed, SECTION).unwrap().unwrap();
    // version, content type, hash fn, 1 set, set length, 1 hash.
    assert_eq!(&data[..4], &[1, 1, 1, 1]);
    let set_len = data[4] as usize;
    assert_eq!(data.len(), 5 + set_len);
    assert_eq!(data[5], 1);
    assert_eq!(&data[6..38], &digest_of_content(&module()).unwrap());
    // 1 signature, record length, key id length 12, key id, alg, 64, sig.
    assert_eq!(data[38], 1);
    assert_eq!(data[39] as usize, 1 + 12 + 1 + 1 + 64);
    assert_eq!(data[40], 12);
    assert_eq!(&data[41..53], &k.public().key_id_bytes());
    assert_eq!(&data[53..55], &[1, 64]);
    // The signed message is the spec's.
    let mut msg = b"wasmsig\x01\x01\x01".to_vec();
    msg.extend_from_slice(&data[6..38]);
    let sig = ed25519_dalek::Signature::from_slice(&data[55..119]).unwrap();
    k.public().0.verify_strict(&msg, &sig).unwrap();
}

#[test]
fn key_id_is_wasmsign2s_default() {
    // HMAC-SHA-256 test vector (RFC 4231, test case 2).
    assert_eq!(
        hex::encode(keys::hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let pk = key(3).public();
    let mac = keys::hmac_sha256(b"key_id", &pk.to_bytes());
    assert_eq!(pk.key_id_bytes(), mac[..KEY_ID_LEN]);
    assert_eq!(pk.key_id(), hex::encode(&mac[..KEY_ID_LEN]));
}

#[test]
fn two_signers_both_verify() {
    let (a, b) = (key(1), key(2));
    let once = sign(&component(), &a).unwrap();
    let twice = sign(&once, &b).unwrap();
    assert_eq!(verify(&twice, &trust(&[("a", &a)])).unwrap().key_name, "a");
    assert_eq!(verify(&twice, &trust(&[("b", &b)])).unwrap().key_name, "b");
    assert_eq!(
        verify(&twice, &trust(&[("a", &a), ("b", &b)]))
            .unwrap()
            .key_name,
        "a"
    );
    assert_eq!(
        signer_key_ids(&twice).unwrap(),
        vec![a.key_id(), b.key_id()]
    );
    assert!(matches!(
        sign(&twice, &a),
        Err(SignError::AlreadySigned { .. })
    ));
    assert_eq!(
        digest_of_content(&twice).unwrap(),
        digest_of_content(&component()).unwrap()
    );
}

#[test]
fn refusals_say_which() {
    let (a, b) = (key(1), key(2));
    let file = component();
    assert_eq!(
        verify(&file, &trust(&[("a", &a)])),
        Err(VerifyError::Unsigned)
    );
    assert_eq!(
        VerifyError::Unsigned.to_string(),
        "not signed: the file has no signature section"
    );
    let signed = sign(&file, &a).unwrap();
    match verify(&signed, &trust(&[("b", &b)])) {
        Err(e @ VerifyError::Untrusted { .. }) => {
            assert!(e.to_string().contains(&a.key_id()), "{e}");
            assert!(
                e.to_string()
                    .starts_with("signed only by keys not in the trust store")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        verify(&signed, &TrustStore::default()),
        Err(VerifyError::NoTrustedKeys)
    );
    assert_eq!(
        verify(b"hello", &trust(&[("a", &a)])),
        Err(VerifyError::NotWasm)
    );
    // Content changed after signing.
    let mut altered = signed.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let e = verify(&altered, &trust(&[("a", &a)])).unwrap_err();
    assert_eq!(e, VerifyError::Altered);
    assert!(e.to_string().starts_with("altered after signing"));
    // Signing a changed signed file is refused.
    assert!(matches!(
        sign(&altered, &b),
        Err(SignError::AlteredSinceSigned)
    ));
    // The signature bytes themselves changed.
    let mut bad = signed.clone();
    let sig_end = wasm::sections(&signed).unwrap()[0].range.end;
    bad[sig_end - 1] ^= 0x01;
    assert_eq!(
        verify(&bad, &trust(&[("a", &a)])),
        Err(VerifyError::BadSignature {
            key_name: "a".into()
        })
    );
    // Embedding a manifest into a signed file is refused.
    assert!(embed_manifest(&signed, &crate::manifest::tests::sample()).is_err());
    // A signature section that is not first.
    let moved =
        wasm::with_custom_section(&strip_signatures(&signed).unwrap(), SECTION, b"x").unwrap();
    assert!(matches!(
        verify(&moved, &trust(&[("a", &a)])),
        Err(VerifyError::Malformed { .. })
    ));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let a = key(1);
    let t = trust(&[("a", &a)]);
    for file in [component(), module()] {
        let signed = sign(&file, &a).unwrap();
        verify(&signed, &t).unwrap();
        for i in 0..signed.len() {
            for bit in 0..8 {
                let mut b = signed.clone();
                b[i] ^= 1 << bit;
                let r = verify(&b, &t);
                assert!(r.is_err(), "flip of bit {bit} at byte {i} verified: {r:?}");
                let _ = sign(&b, &a);
                let _ = digest_of_content(&b);
                let _ = signer_key_ids(&b);
            }
        }
    }
}

/// With two trusted signers, a flip anywhere is refused, except inside one
/// signer's key id: that signature then names an unknown key and is
/// ignored, and the other signer's intact signature still vouches for
/// exactly this content.
#[test]
fn bit_flips_with_two_trusted_signers_are_refused() {
    let (a, b) = (key(1), key(2));
    let t = trust(&[("a", &a), ("b", &b)]);
    let signed = sign(&sign(&module(), &a).unwrap(), &b).unwrap();
    let id_range = |k: &SecretKey| {
        let id = k.public().key_id_bytes();
        let at = signed.windows(id.len()).position(|w| w == id).unwrap();
        at..at + id.len()
    };
    let (ra, rb) = (id_range(&a), id_range(&b));
    for i in 0..signed.len() {
        for bit in 0..8 {
            let mut f = signed.clone();
            f[i] ^= 1 << bit;
            match verify(&f, &t) {
                Err(_) => {}
                Ok(v) if ra.contains(&i) => assert_eq!(v.key_name, "b"),
                Ok(v) if rb.contains(&i) => assert_eq!(v.key_name, "a"),
                Ok(_) => panic!("flip of bit {bit} at byte {i} verified"),
            }
        }
    }
}

#[test]
fn truncations_and_extensions_are_refused() {
    let a = key(1);
    let t = trust(&[("a", &a)]);
    let signed = sign(&component(), &a).unwrap();
    for n in 0..signed.len() {
        assert!(
            verify(&signed[..n], &t).is_err(),
            "prefix of {n} bytes verified"
        );
    }
    let mut longer = signed.clone();
    longer.extend_from_slice(&[0, 1, 0]);
    assert!(verify(&longer, &t).is_err());
}

#[test]
fn garbage_never_panics() {
    let a = key(1);
    let t = trust(&[("a", &a)]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let len = (next() % 96) as usize;
        let mut b = b"\0asm\x0d\0\x01\0".to_vec();
        // A signature section header with random contents.
        b.extend_from_slice(&[0, (len + 10) as u8, 9]);
        b.extend_from_slice(b"signature");
        b.extend((0..len).map(|_| (next() % 4) as u8));
        let _ = verify(&b, &t);
        let _ = sign(&b, &a);
    }
}

#[test]
fn key_files_and_trust_store() {
    let dir = tempfile::tempdir().unwrap();
    let (sk_path, pk_path) = write_keypair(dir.path(), "publisher").unwrap();
    assert!(sk_path.ends_with("publisher.key") && pk_path.ends_with("publisher.pub"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sk_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let e = write_keypair(dir.path(), "publisher").unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(matches!(
        write_keypair(dir.path(), "../x"),
        Err(KeyError::InvalidName(_))
    ));
    let sk = read_secret_key(&sk_path).unwrap();
    let pk = read_public_key(&pk_path).unwrap();
    assert_eq!(sk.public(), pk);
    assert!(!format!("{sk:?}").contains(&hex::encode(sk.to_seed())));
    // The wrong kind of file says so.
    let e = read_secret_key(&pk_path).unwrap_err().to_string();
    assert!(
        e.contains("public key file") && e.contains("publisher.pub"),
        "{e}"
    );
    let e = read_public_key(&sk_path).unwrap_err().to_string();
    assert!(e.contains("secret key file"), "{e}");
    let junk = dir.path().join("junk.pub");
    std::fs::write(&junk, "hello\n").unwrap();
    let e = read_public_key(&junk).unwrap_err().to_string();
    assert!(e.contains("not a trademl key file"), "{e}");
    std::fs::write(&junk, format!("{PUBLIC_KEY_HEADER}\nzz\n")).unwrap();
    assert!(
        read_public_key(&junk)
            .unwrap_err()
            .to_string()
            .contains("64 hexadecimal")
    );
    let e = read_public_key(&dir.path().join("absent.pub"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.pub"), "{e}");

    // The trust store reads every .pub and names a bad one.
    let e = TrustStore::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("junk.pub"), "{e}");
    std::fs::remove_file(&junk).unwrap();
    write_keypair(dir.path(), "second").unwrap();
    let store = TrustStore::load(dir.path()).unwrap();
    assert_eq!(store.len(), 2);
    assert!(!store.is_empty());
    let names: Vec<_> = store.keys().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, vec!["publisher", "second"]);
    let signed = sign(&component(), &sk).unwrap();
    assert_eq!(verify(&signed, &store).unwrap().key_name, "publisher");
    let missing = dir.path().join("nope");
    let e = TrustStore::load(&missing).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    let g1 = generate();
    let g2 = generate();
    assert_ne!(g1.to_seed(), g2.to_seed());
}
