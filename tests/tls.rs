//! HTTPS against the real binary: certificates made on the first visit, their fields and
//! files, protocol versions, resumption, 0-RTT, hostile ClientHellos, slow clients, the CA
//! files, prefetch across a restart and shared ticket keys.
mod common;
use common::tls::*;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::ssl::{SslConnector, SslMethod, SslSession, SslVersion};
use openssl::x509::X509;

fn x509_text(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-text", "-noout", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl s_client` against the HTTPS port; `input` goes to its stdin.
fn s_client(port: u16, args: &[&str], input: &[u8]) -> String {
    run_with_input(
        Command::new("openssl")
            .arg("s_client")
            .arg("-connect")
            .arg(format!("127.0.0.1:{port}"))
            .args(args),
        input,
        T,
    )
}

const GET_CLOSE: &[u8] = b"GET /x.gif HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

/// The response arrived: the GIF's header is in s_client's output.
fn got_gif(out: &str) -> bool {
    out.contains("HTTP/1.1 200 OK") && out.contains("image/gif")
}

// ---------------------------------------------------------------------------------------
// Certificates made on the first visit

#[test]
fn thirty_new_names_each_succeed_on_first_attempt() {
    let srv = Server::start(&[]);
    let mut names = Vec::new();
    for i in 0..20 {
        names.push((format!("ads.site{i}.com"), format!("_.site{i}.com")));
    }
    for i in 0..10 {
        names.push((format!("shop{i}.co.uk"), format!("shop{i}.co.uk")));
    }
    for (name, _) in &names {
        let r = https_get(&srv, name, "/x.gif").expect("first attempt");
        assert_gif(&r);
    }
    let dir = srv.dir.path();
    for (_, file) in &names {
        let path = dir.join(file);
        assert!(path.exists(), "{file}");
        let cert = load_cert(&path);
        assert_eq!(cn(&cert), file.replacen("_.", "*.", 1));
    }
    assert!(!dir.join("_.co.uk").exists());
    assert_eq!(cert_files(dir).len(), 30);
    assert_eq!(srv.stat("slh"), 30);
    assert_eq!(srv.stat("v13"), 30);
    assert_eq!(srv.stat("cgn"), 30);
    assert_eq!(srv.stat("slm") + srv.stat("sle") + srv.stat("slu"), 0);
    // A second visit to a sibling name is a cache hit, no new certificate.
    assert_gif(&https_get(&srv, "other.site3.com", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 30);
    assert!(srv.stat("sch") >= 1);
    // We made the CA: its key is private.
    let mode = std::fs::metadata(dir.join("ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn forty_simultaneous_first_visits_make_one_certificate() {
    let srv = Server::start(&[]);
    let ca = ca_file(&srv);
    let barrier = Arc::new(Barrier::new(40));
    let port = srv.https;
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let barrier = barrier.clone();
            let ca = ca.clone();
            std::thread::spawn(move || {
                let conn = connector(&ca);
                barrier.wait();
                let mut s = conn
                    .connect("burst.example.net", tcp(port))
                    .map_err(|e| e.to_string())?;
                let r = request(&mut s, "/x.gif", true);
                Ok::<u16, String>(r.status)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Ok(200));
    }
    assert_eq!(
        cert_files(srv.dir.path()),
        vec!["_.example.net".to_string()]
    );
    assert_eq!(srv.stat("cgn"), 1);
    assert_eq!(srv.stat("slh"), 40);
}

#[test]
fn certificate_file_and_fields() {
    let srv = Server::start(&[]);
    let mut s = tls_connect(&srv, "ads.example.com").unwrap();
    // Chain sent: the leaf alone; the self-signed CA is what the client already trusts.
    let chain = s.ssl().peer_cert_chain().unwrap();
    assert_eq!(chain.len(), 1);
    let ca = load_cert(&ca_file(&srv));
    assert!(chain
        .get(0)
        .unwrap()
        .verify(&ca.public_key().unwrap())
        .unwrap());
    let peer_serial = s
        .ssl()
        .peer_certificate()
        .unwrap()
        .serial_number()
        .to_bn()
        .unwrap();
    assert_gif(&request(&mut s, "/x.gif", true));
    assert_gif(&https_get(&srv, "shop.example.org", "/x.gif").unwrap());

    let path = srv.dir.path().join("_.example.com");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    let key_at = pem.find("-----BEGIN PRIVATE KEY-----").expect("PKCS#8 key");
    assert!(pem[..key_at].ends_with("-----END CERTIFICATE-----\n"));
    assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));
    assert_eq!(pem.matches("BEGIN").count(), 2);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let cert = load_cert(&path);
    assert_eq!(cert.serial_number().to_bn().unwrap(), peer_serial);
    assert_eq!(cn(&cert), "*.example.com");
    let sans = cert.subject_alt_names().unwrap();
    assert_eq!(sans.get(0).unwrap().dnsname(), Some("*.example.com"));
    assert_eq!(
        cert.issuer_name().to_der().unwrap(),
        ca.subject_name().to_der().unwrap()
    );
    assert!(cert.verify(&ca.public_key().unwrap()).unwrap());
    let text = x509_text(&path);
    for want in [
        "CA:FALSE",
        "X509v3 Key Usage: critical",
        "Digital Signature",
        "TLS Web Server Authentication",
        "X509v3 Authority Key Identifier",
        "DNS:*.example.com",
        "ASN1 OID: prime256v1",
    ] {
        assert!(text.contains(want), "{want} missing in\n{text}");
    }
    assert_eq!(
        cert.authority_key_id().unwrap().as_slice(),
        ca.subject_key_id().unwrap().as_slice()
    );
    let key = cert.public_key().unwrap();
    assert_eq!(key.id(), Id::EC);
    assert_eq!(
        key.ec_key().unwrap().group().curve_name(),
        Some(Nid::X9_62_PRIME256V1)
    );
    // Serial: random, at least 64 bits, different per certificate.
    let serial = cert.serial_number().to_bn().unwrap();
    assert!(serial.num_bits() >= 64, "{}", serial.num_bits());
    let other = load_cert(&srv.dir.path().join("_.example.org"));
    assert_ne!(other.serial_number().to_bn().unwrap(), serial);
    // Validity: back-dated by at least a day, at most 397 days in all.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day_ago = Asn1Time::from_unix(now - 86400).unwrap();
    assert!(cert.not_before() <= day_ago);
    let span = cert.not_before().diff(cert.not_after()).unwrap();
    assert!(
        span.days < 397 || span.days == 397 && span.secs == 0,
        "validity {} days {} s",
        span.days,
        span.secs
    );
}

#[test]
fn rsa_leaf_key_option() {
    let srv = Server::start(&["--leaf-key", "rsa"]);
    let s = tls_connect(&srv, "a.rsa.example").unwrap();
    let key = s.ssl().peer_certificate().unwrap().public_key().unwrap();
    assert_eq!(key.id(), Id::RSA);
    let file = load_cert(&srv.dir.path().join("_.rsa.example"));
    assert_eq!(file.public_key().unwrap().id(), Id::RSA);
    assert!(x509_text(&srv.dir.path().join("_.rsa.example")).contains("Key Encipherment"));
}

#[test]
fn no_sni_gets_a_certificate_for_the_local_address() {
    let srv = Server::start(&[]);
    let ca = ca_file(&srv);
    let out = s_client(
        srv.https,
        &[
            "-noservername",
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_ip",
            "127.0.0.1",
            "-verify_return_error",
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(got_gif(&out), "{out}");
    let path = srv.dir.path().join("127.0.0.1");
    assert!(path.exists());
    assert!(x509_text(&path).contains("IP Address:127.0.0.1"));
    // The openssl crate sends no SNI for an IP and checks the IP SAN.
    assert_gif(&https_get(&srv, "127.0.0.1", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 1);
}

// ---------------------------------------------------------------------------------------
// Protocols and ciphers

#[test]
fn protocol_versions_negotiate_and_count() {
    let srv = Server::start(&[]);
    let cases: [(&[&str], &str, &str); 4] = [
        (&["-tls1_3"], "TLSv1.3", "v13"),
        (&["-tls1_2"], "TLSv1.2", "v12"),
        (
            &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "TLSv1.1",
            "v11",
        ),
        (&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], "TLSv1", "v10"),
    ];
    for (args, proto, counter) in cases {
        let before = srv.stat(counter);
        let mut all = vec!["-servername", "v.example.com", "-ign_eof"];
        all.extend_from_slice(args);
        let out = s_client(srv.https, &all, GET_CLOSE);
        assert!(
            out.contains(&format!("Protocol  : {proto}\n"))
                || out.contains(&format!("Protocol: {proto}\n")),
            "{proto}: {out}"
        );
        assert!(got_gif(&out), "{proto}: {out}");
        assert_eq!(srv.stat(counter), before + 1, "{counter}");
    }
}

#[test]
fn chacha20_when_the_client_prefers_it() {
    let srv = Server::start(&[]);
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "c.example.com",
            "-tls1_3",
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("TLS_CHACHA20_POLY1305_SHA256"), "{out}");
    assert!(got_gif(&out), "{out}");
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "c.example.com",
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(
        out.contains("Cipher is ECDHE-ECDSA-CHACHA20-POLY1305"),
        "{out}"
    );
    assert!(got_gif(&out), "{out}");
    // And AES when the client prefers that.
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "c.example.com",
            "-tls1_3",
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("TLS_AES_128_GCM_SHA256"), "{out}");
}

// ---------------------------------------------------------------------------------------
// Sessions and 0-RTT

#[test]
fn tls12_reconnect_is_resumed() {
    let srv = Server::start(&[]);
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "r.example.com",
            "-tls1_2",
            "-reconnect",
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.matches("Reused, TLSv1.2").count() >= 5, "{out}");
    assert!(got_gif(&out), "{out}");
    assert!(srv.stat("ssh") > 0);
}

#[test]
fn tls12_and_tls13_session_files_resume() {
    let srv = Server::start(&[]);
    let tmp = TempDir::new("sess");
    for (flag, proto) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let sess = tmp.path().join(format!("s{flag}.pem"));
        let sess = sess.to_str().unwrap();
        let out = s_client(
            srv.https,
            &[
                "-servername",
                "s.example.com",
                flag,
                "-sess_out",
                sess,
                "-ign_eof",
            ],
            GET_CLOSE,
        );
        assert!(got_gif(&out), "{out}");
        assert!(out.contains(&format!("New, {proto}")), "{out}");
        let out = s_client(
            srv.https,
            &[
                "-servername",
                "s.example.com",
                flag,
                "-sess_in",
                sess,
                "-ign_eof",
            ],
            GET_CLOSE,
        );
        assert!(out.contains(&format!("Reused, {proto}")), "{out}");
        assert!(got_gif(&out), "{out}");
    }
    assert!(srv.stat("ssh") > 0);
}

#[test]
fn openssl_crate_session_is_reused() {
    let srv = Server::start(&[]);
    let ca = ca_file(&srv);
    for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_ca_file(&ca).unwrap();
        b.set_max_proto_version(Some(version)).unwrap();
        b.set_min_proto_version(Some(version)).unwrap();
        // The session as a ticket delivers it (TLS 1.3 tickets come after the handshake;
        // AWS-LC, as a client, hands them over only through this callback).
        let got: Arc<std::sync::Mutex<Option<SslSession>>> = Arc::default();
        let keep = got.clone();
        b.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::CLIENT);
        b.set_new_session_callback(move |_, s| *keep.lock().unwrap() = Some(s));
        let conn = b.build();
        let mut s = conn.connect("o.example.com", tcp(srv.https)).unwrap();
        assert_gif(&request(&mut s, "/x.gif", false));
        assert!(!s.ssl().session_reused());
        let session: SslSession = got.lock().unwrap().take().expect("a session ticket");
        let _ = s.shutdown();
        drop(s);

        let mut cfg = conn.configure().unwrap();
        // SAFETY: the session comes from a connection made with the same connector.
        unsafe { cfg.set_session(&session).unwrap() };
        let mut s = cfg.connect("o.example.com", tcp(srv.https)).unwrap();
        assert!(s.ssl().session_reused(), "{version:?}");
        assert_gif(&request(&mut s, "/x.gif", true));
    }
    assert!(srv.stat("ssh") > 0);
}

#[test]
fn early_data_is_accepted_and_answered() {
    let srv = Server::start(&[]);
    let tmp = TempDir::new("zrt");
    let sess = tmp.path().join("s.pem");
    let sess = sess.to_str().unwrap();
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "z.example.com",
            "-tls1_3",
            "-sess_out",
            sess,
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(got_gif(&out), "{out}");
    // 16384 under OpenSSL; AWS-LC's limit is fixed (14336).
    let max = pixelserv::tls::backend::MAX_EARLY_DATA;
    assert!(out.contains(&format!("Max Early Data: {max}")), "{out}");
    let req = tmp.path().join("req.txt");
    std::fs::write(&req, b"GET /x.gif HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "z.example.com",
            "-tls1_3",
            "-sess_in",
            sess,
            "-early_data",
            req.to_str().unwrap(),
            "-ign_eof",
        ],
        // A second request on the same connection makes the server close it.
        GET_CLOSE,
    );
    assert!(out.contains("Early data was accepted"), "{out}");
    assert!(out.contains("Reused, TLSv1.3"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(srv.stat("zrt") >= 1);
    assert_eq!(srv.stat("slh"), 3);
}

/// A browser sends its one request as early data and then waits for the answer, sending
/// nothing more: the answer must come without further input from the client (under AWS-LC
/// the end of early data arrives inside a read, which once left the connection waiting until
/// the handshake timeout).
#[test]
fn a_lone_early_request_is_answered_without_more_input() {
    let srv = Server::start(&[]);
    let tmp = TempDir::new("zrt1");
    let sess = tmp.path().join("s.pem");
    let sess = sess.to_str().unwrap();
    let args = ["-servername", "z.example.com", "-tls1_3", "-ign_eof"];
    let out = s_client(
        srv.https,
        &[&args[..], &["-sess_out", sess]].concat(),
        GET_CLOSE,
    );
    assert!(got_gif(&out), "{out}");
    let req = tmp.path().join("req.txt");
    std::fs::write(
        &req,
        b"GET /x.gif HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let early = ["-sess_in", sess, "-early_data", req.to_str().unwrap()];
    let out = s_client(srv.https, &[&args[..], &early[..]].concat(), b"");
    assert!(out.contains("Early data was accepted"), "{out}");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 1, "{out}");
    assert!(srv.stat("zrt") >= 1);
}

// ---------------------------------------------------------------------------------------
// Hostile ClientHellos

/// Sends a ClientHello; returns the first byte the server answered (0 = it just closed).
fn first_answer(port: u16, hello: &[u8]) -> u8 {
    let mut s = tcp(port);
    s.write_all(hello).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(1) => b[0],
        Ok(_) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("no answer: {e}"),
    }
}

#[test]
fn raw_client_hello_is_well_formed() {
    // The builder itself works: with a good name the server answers with a ServerHello.
    let srv = Server::start(&[]);
    let hello = client_hello(Some(&sni_body(&[b"good.example.com"])));
    assert_eq!(first_answer(srv.https, &hello), 0x16);
    assert!(srv.dir.path().join("_.example.com").exists());
}

#[test]
fn hostile_server_names_are_refused_safely() {
    let srv = Server::start(&[]);
    let long_label = format!("{}.example.com", "a".repeat(300));
    let mut truncated = sni_body(&[b"trunc.example.com"]);
    truncated.truncate(truncated.len() - 4);
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let names: Vec<&[u8]> = vec![
        b"a/b.example.com",
        b"..",
        b"../a",
        b"../../etc/passwd",
        b"a\0b.example.com",
        b"evil\x01\x1b.example.com",
        "b\u{fc}cher.example.com".as_bytes(),
        b"\xff\xfe.example.com",
        long_label.as_bytes(),
        b"ca.crt",
        b"prefetch",
        b"ca.key",
        b"CA.CRT",
    ];
    for n in &names {
        bodies.push((String::from_utf8_lossy(n).into_owned(), sni_body(&[n])));
    }
    bodies.push(("empty".into(), sni_body(&[b""])));
    bodies.push(("truncated".into(), truncated));
    bodies.push((
        "duplicate".into(),
        sni_body(&[b"dup1.hostile.example", b"dup2.hostile.example"]),
    ));
    bodies.push(("empty list".into(), vec![0, 0]));
    for (what, body) in &bodies {
        let answer = first_answer(srv.https, &client_hello(Some(body)));
        assert!(
            answer == 0x15 || answer == 0,
            "{what:?}: answered {answer:#x}"
        );
    }
    let n = bodies.len() as u64;
    assert_eq!(srv.wait_stat("slu", T, |v| v >= n), n);
    assert!(srv.stat("snx") >= names.len() as u64);
    assert_eq!(srv.stat("slh"), 0);
    // Nothing was written, in CERT_PATH or next to it.
    assert_eq!(cert_files(srv.dir.path()), Vec::<String>::new());
    let parent = srv.dir.path().parent().unwrap();
    assert!(!parent.join("a").exists() || !was_written_now(&parent.join("a")));
    assert_eq!(
        std::fs::read_to_string(srv.dir.path().join("ca.crt"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        1
    );
    assert!(!srv.dir.path().join("prefetch").exists());
    // Still serving.
    assert_gif(&https_get(&srv, "fine.example.com", "/x.gif").unwrap());
}

fn was_written_now(p: &Path) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().map_or(true, |e| e < Duration::from_secs(60)))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Slow and unwilling clients

#[test]
fn silent_clients_do_not_block_others() {
    // A server that waited for silent clients would take the 3 s handshake deadline to
    // answer; the bound below leaves room for a loaded machine and still tells them apart.
    let srv = Server::start(&["--handshake-timeout", "3"]);
    assert_gif(&https_get(&srv, "warm.example.com", "/x.gif").unwrap());
    let silent: Vec<TcpStream> = (0..200).map(|_| tcp(srv.https)).collect();
    let start = Instant::now();
    assert_gif(&https_get(&srv, "busy.example.org", "/x.gif").unwrap());
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // All of them are closed by the handshake timeout.
    let end = Instant::now() + Duration::from_secs(5);
    for mut s in silent {
        let left = end.saturating_duration_since(Instant::now()) + Duration::from_millis(100);
        assert!(
            closed_within(&mut s, left),
            "still open after {:?}",
            start.elapsed()
        );
    }
    assert_eq!(srv.wait_stat("slu", T, |v| v >= 200), 200);
}

#[test]
fn client_not_trusting_the_ca_is_counted() {
    let srv = Server::start(&[]);
    // A CA of our own the server's certificate does not chain to.
    let other = TempDir::new("otherca");
    openssl(
        other.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Other CA",
        ],
    );
    let conn = connector(&other.path().join("c.pem"));
    assert!(conn.connect("u.example.com", tcp(srv.https)).is_err());
    assert_eq!(srv.wait_stat("uca", T, |v| v >= 1), 1);
    assert_eq!(srv.stat("slu"), 1);
    // s_client with verification but no CA file.
    let out = s_client(
        srv.https,
        &[
            "-servername",
            "u.example.com",
            "-verify_return_error",
            "-no-CAfile",
            "-no-CApath",
            "-no-CAstore",
        ],
        b"",
    );
    assert!(out.contains("verify error"), "{out}");
    assert_eq!(srv.wait_stat("uca", T, |v| v >= 2), 2);
    assert_eq!(srv.stat("slu"), 2);
}

// ---------------------------------------------------------------------------------------
// Files across restarts

#[test]
fn prefetch_survives_a_restart() {
    let mut srv = Server::start(&[]);
    let names = ["a.one.example", "b.two.example", "c.three.example"];
    for n in names {
        assert_gif(&https_get(&srv, n, "/x.gif").unwrap());
    }
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    let prefetch = std::fs::read_to_string(dir.path().join("prefetch")).unwrap();
    let lines: Vec<&str> = prefetch.lines().collect();
    assert_eq!(lines.len(), 3, "{prefetch}");
    for l in &lines {
        let (name, count) = l.split_once('\t').expect("tab");
        assert!(name.starts_with("_.") && name.ends_with(".example"), "{l}");
        count.parse::<u64>().expect("count");
    }
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    // Loaded after the privilege drop, so possibly just after the ports listen.
    for n in ["_.one.example", "_.two.example", "_.three.example"] {
        assert!(
            srv.wait_log(&format!("sslctx_tbl_load: {n}"), T),
            "{}",
            srv.log_text()
        );
    }
    assert_eq!(srv.stat("sct"), 3);
    assert_gif(&https_get(&srv, "x.two.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("sch"), 1);
    assert_eq!(srv.stat("cgn"), 0);
    assert_eq!(srv.stat("scm"), 0);
}

#[test]
fn corrupt_certificate_file_is_replaced() {
    let dir = TempDir::new("corrupt");
    std::fs::write(
        dir.path().join("_.example.com"),
        b"garbage, not a PEM file\n",
    )
    .unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert_gif(&https_get(&srv, "ads.example.com", "/x.gif").unwrap());
    assert_eq!(srv.stat("sle"), 1);
    assert_eq!(srv.stat("cgn"), 1);
    let cert = load_cert(&srv.dir.path().join("_.example.com"));
    assert_eq!(cn(&cert), "*.example.com");
}

#[test]
fn truncated_certificate_file_is_replaced_after_restart() {
    let mut srv = Server::start(&[]);
    assert_gif(&https_get(&srv, "ads.example.com", "/x.gif").unwrap());
    srv.signal(libc::SIGTERM);
    assert_eq!(srv.wait_exit(T), Some(0));
    let dir = srv.take_dir();
    let path = dir.path().join("_.example.com");
    let pem = std::fs::read(&path).unwrap();
    std::fs::write(&path, &pem[..pem.len() / 2]).unwrap();
    std::fs::remove_file(dir.path().join("prefetch")).unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert_gif(&https_get(&srv, "ads.example.com", "/x.gif").unwrap());
    assert_eq!(srv.stat("sle"), 1);
    load_cert(&srv.dir.path().join("_.example.com"));
}

/// ca.crt + ca.key (RSA) made with the openssl CLI, as users of the original have them.
fn make_rsa_ca(dir: &Path, encrypt: Option<&str>) {
    match encrypt {
        None => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "ca.key",
            ],
        ),
        Some(pass) => {
            let pass = format!("pass:{pass}");
            openssl(
                dir,
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-aes256",
                    "-pass",
                    &pass,
                    "-out",
                    "ca.key",
                ],
            );
        }
    }
    let mut args = vec![
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=Test RSA CA/O=tests",
    ];
    let passin;
    if let Some(pass) = encrypt {
        passin = format!("pass:{pass}");
        args.extend(["-passin", &passin]);
    }
    openssl(dir, &args);
}

/// A certificate file in the original's format: RSA-2048 cert PEM, then the PKCS#8 key.
fn make_original_cert(dir: &Path, file: &str, subject: &str, serial: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "leaf.key",
        ],
    );
    let subj = format!("/CN={subject}");
    openssl(
        dir,
        &[
            "req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", &subj,
        ],
    );
    let san = format!("subjectAltName=DNS:{subject}\nextendedKeyUsage=serverAuth\n");
    std::fs::write(dir.join("leaf.ext"), san).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "825",
            "-sha256",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ],
    );
    let mut pem = std::fs::read(dir.join("leaf.crt")).unwrap();
    pem.extend(std::fs::read(dir.join("leaf.key")).unwrap());
    assert!(String::from_utf8_lossy(&pem).contains("-----BEGIN PRIVATE KEY-----"));
    std::fs::write(dir.join(file), pem).unwrap();
    for f in ["leaf.key", "leaf.csr", "leaf.ext", "leaf.crt"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
}

#[test]
fn original_rsa_certificate_file_is_served_as_is() {
    let dir = TempDir::new("orig");
    make_rsa_ca(dir.path(), None);
    make_original_cert(dir.path(), "_.example.com", "*.example.com", "0x1c163596");
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    let s = tls_connect(&srv, "ads.example.com").unwrap();
    let peer = s.ssl().peer_certificate().unwrap();
    assert_eq!(
        peer.serial_number()
            .to_bn()
            .unwrap()
            .to_hex_str()
            .unwrap()
            .to_string(),
        "1C163596"
    );
    assert_eq!(peer.public_key().unwrap().id(), Id::RSA);
    drop(s);
    assert_eq!(srv.stat("cgn"), 0);
    assert_eq!(srv.stat("scm"), 1);
}

#[test]
fn existing_rsa_ca_is_used() {
    let dir = TempDir::new("rsaca");
    make_rsa_ca(dir.path(), None);
    let before = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert!(
        srv.log_text().contains("CA loaded from"),
        "{}",
        srv.log_text()
    );
    let s = tls_connect(&srv, "ads.rsaca.example").unwrap();
    let ca = X509::from_pem(&before).unwrap();
    let leaf = s.ssl().peer_certificate().unwrap();
    assert_eq!(
        leaf.issuer_name().to_der().unwrap(),
        ca.subject_name().to_der().unwrap()
    );
    assert!(leaf.verify(&ca.public_key().unwrap()).unwrap());
    assert_eq!(
        std::fs::read(srv.dir.path().join("ca.crt")).unwrap(),
        before
    );
}

#[test]
fn encrypted_ca_key_with_passphrase_file() {
    let dir = TempDir::new("encca");
    make_rsa_ca(dir.path(), Some("s3cret pass"));
    std::fs::write(dir.path().join("ca.key.passphrase"), "s3cret pass\n").unwrap();
    assert!(std::fs::read_to_string(dir.path().join("ca.key"))
        .unwrap()
        .contains("ENCRYPTED"));
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert_gif(&https_get(&srv, "ads.enc.example", "/x.gif").unwrap());
    assert_eq!(srv.stat("cgn"), 1);
}

#[test]
fn ca_without_key_serves_existing_certificates_only() {
    let dir = TempDir::new("nokey");
    make_rsa_ca(dir.path(), None);
    make_original_cert(dir.path(), "_.example.com", "*.example.com", "0x1234");
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    assert!(
        srv.log_text().contains("the CA cannot sign certificates: "),
        "{}",
        srv.log_text()
    );
    assert_gif(&https_get(&srv, "ads.example.com", "/x.gif").unwrap());
    let err = https_get(&srv, "new.other.example", "/x.gif");
    assert!(err.is_err());
    assert_eq!(srv.wait_stat("slm", T, |v| v >= 1), 1);
    assert_eq!(srv.stat("cgn"), 0);
    assert!(!srv.dir.path().join("_.other.example").exists());
    assert!(!srv.dir.path().join("ca.key").exists());
    // Still alive and serving.
    assert_gif(&https_get(&srv, "www.example.com", "/x.gif").unwrap());
    assert_eq!(srv.get("/x.gif").status, 200);
}

// ---------------------------------------------------------------------------------------
// Admin port and shared ticket keys

#[test]
fn admin_port_serves_stats_over_tls() {
    let admin = free_port();
    let admin_s = admin.to_string();
    let srv = Server::start(&["-A", &admin_s]);
    assert!(
        srv.wait_log(&format!(":{admin} (TLS)"), T),
        "{}",
        srv.log_text()
    );
    let conn = connector(&ca_file(&srv));
    let admin_stat = |name: &str| {
        let mut s = conn.connect("admin.example.com", tcp(admin)).unwrap();
        let r = request(&mut s, "/servstats.txt", true);
        assert_eq!(r.status, 200);
        let body = String::from_utf8_lossy(&r.body).into_owned();
        let stats = parse_stats(&body);
        let v = stats
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        v.unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    let before: u64 = admin_stat("ufe").parse().unwrap();
    let r = https_get(&srv, "admin.example.com", "/servstats.txt").unwrap();
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains(" slh, "));
    assert_eq!(admin_stat("ufe").parse::<u64>().unwrap(), before + 1);
    // Nor on the plain HTTP port.
    assert!(!String::from_utf8_lossy(&srv.get("/servstats.txt").body).contains(" slh, "));
}

#[test]
fn shared_ticket_keys_resume_across_instances() {
    let keys = TempDir::new("keys");
    let file = keys.path().join("ticket.keys");
    let mut bytes = [0u8; 80];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let f = file.to_str().unwrap();
    let a = Server::start(&["--ticket-keys", f]);
    let b = Server::start(&["--ticket-keys", f]);
    let sess = keys.path().join("s.pem");
    let sess = sess.to_str().unwrap();
    let out = s_client(
        a.https,
        &[
            "-servername",
            "t.example.com",
            "-tls1_2",
            "-sess_out",
            sess,
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(got_gif(&out), "{out}");
    assert!(out.contains("TLS session ticket:"), "{out}");
    let out = s_client(
        b.https,
        &[
            "-servername",
            "t.example.com",
            "-tls1_2",
            "-sess_in",
            sess,
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("Reused, TLSv1.2"), "{out}");
    assert!(got_gif(&out), "{out}");
    // Without the shared keys the same session is not accepted.
    let c = Server::start(&[]);
    let out = s_client(
        c.https,
        &[
            "-servername",
            "t.example.com",
            "-tls1_2",
            "-sess_in",
            sess,
            "-ign_eof",
        ],
        GET_CLOSE,
    );
    assert!(out.contains("New, TLSv1.2"), "{out}");
}

/// A CA that is an intermediate under a root of the user's: `ca.crt` holds both, the devices
/// trust the root only. The server sends the leaf and the intermediate (not the root), and a
/// client that trusts only the root verifies a name never seen.
#[test]
fn an_intermediate_ca_is_sent_and_the_root_is_not() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
    use openssl::x509::{X509Builder, X509NameBuilder};
    let make = |cn: &str,
                key: &PKey<openssl::pkey::Private>,
                issuer: Option<(&X509, &PKey<openssl::pkey::Private>)>| {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(issuer.map_or(&name, |(c, _)| c.subject_name()))
            .unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
            .unwrap();
        b.build()
    };
    let ec = || {
        let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
    };
    let (root_key, mid_key) = (ec(), ec());
    let root = make("Test Root", &root_key, None);
    let mid = make("Test Intermediate", &mid_key, Some((&root, &root_key)));
    let dir = TempDir::new("intermediate");
    let mut crt = mid.to_pem().unwrap();
    crt.extend(root.to_pem().unwrap());
    std::fs::write(dir.path().join("ca.crt"), crt).unwrap();
    std::fs::write(
        dir.path().join("ca.key"),
        mid_key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let srv = Server::start_with(Options {
        args: Vec::new(),
        dir: Some(dir),
    });
    let root_file = srv.dir.path().join("root.pem");
    std::fs::write(&root_file, root.to_pem().unwrap()).unwrap();
    let mut s = connector(&root_file)
        .connect("ads.chain.example", tcp(srv.https))
        .expect("verified against the root alone");
    let chain = s.ssl().peer_cert_chain().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(
        chain.get(1).unwrap().to_der().unwrap(),
        mid.to_der().unwrap()
    );
    assert_gif(&request(&mut s, "/x.gif", true));
}
