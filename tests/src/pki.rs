//! Test certificates made with openssl: a CA and a server certificate for 127.0.0.1 and
//! localhost (the TLS tests of the control plane and of the relay's upstream).

use std::path::Path;
use std::process::Command as StdCommand;

use anyhow::{bail, Context, Result};

/// Makes a CA and a server certificate for 127.0.0.1/localhost with openssl; returns paths.
pub fn make_pki(dir: &Path, name: &str) -> Result<(String, String, String)> {
    let p = |f: &str| dir.join(format!("{name}-{f}")).display().to_string();
    let run = |args: &[&str]| -> Result<()> {
        let out = StdCommand::new("openssl")
            .args(args)
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    let ext = dir.join(format!("{name}-ext.cnf"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &p("server.pem"),
        "-extfile",
        &ext.display().to_string(),
    ])?;
    Ok((p("ca.pem"), p("server.pem"), p("server.key")))
}
