//! Credentials for nats-servers that demand them, made on the spot: an
//! operator, an account (with JetStream) and a user as signed JWTs (what
//! `nsc` writes, for operator mode), and a private CA with a server
//! certificate for TLS (made with the `openssl` command).

use crate::LabError;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use nkeys::KeyPair;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

/// Operator mode: a server trusting an operator, which signed an account,
/// which signed a user; the user's credentials file is what a client uses.
#[derive(Debug, Clone)]
pub struct OperatorMode {
    /// The server configuration lines (operator, resolver, preloaded account).
    pub server_config: String,
    /// A `.creds` file's contents: the user's JWT and NKey seed.
    pub user_creds: String,
}

impl OperatorMode {
    /// A fresh operator, account and user.
    pub fn new() -> Result<Self, LabError> {
        let operator = KeyPair::new_operator();
        let system = KeyPair::new_account();
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "vo-operator",
            json!({ "type": "operator", "version": 2 }),
        )?;
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "vo-account",
            json!({
                "limits": {
                    "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                    "wildcards": true, "conn": -1, "leaf": -1,
                    "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
                },
                "default_permissions": { "pub": {}, "sub": {} },
                "type": "account",
                "version": 2
            }),
        )?;
        // JetStream needs a system account.
        let system_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            json!({
                "limits": { "subs": -1, "data": -1, "payload": -1, "imports": -1,
                            "exports": -1, "wildcards": true, "conn": -1, "leaf": -1 },
                "type": "account",
                "version": 2
            }),
        )?;
        let user_jwt = jwt(
            &account,
            &user.public_key(),
            "vo-node",
            json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2
            }),
        )?;
        let seed = user
            .seed()
            .map_err(|e| LabError::Nats(format!("cannot encode a user seed: {e}")))?;
        Ok(Self {
            server_config: format!(
                "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
                 resolver_preload: {{\n  {sys}: \"{system_jwt}\"\n  {}: \"{account_jwt}\"\n}}\n",
                account.public_key(),
                sys = system.public_key(),
            ),
            user_creds: format!(
                "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
                 ************************* IMPORTANT *************************\n\
                 NKEY Seed printed below can be used to sign and prove identity.\n\
                 NKEYs are sensitive and should be treated as secrets.\n\n\
                 -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
                 *************************************************************\n"
            ),
        })
    }
}

/// A NATS JWT (v2): `subject`'s claims, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Result<String, LabError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    // The claims' id: a hash of the claims without it.
    let id = Sha256::digest(claims.to_string().as_bytes());
    claims["jti"] = Value::String(data_encoding::BASE32_NOPAD.encode(&id));
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let signature = issuer
        .sign(signed.as_bytes())
        .map_err(|e| LabError::Nats(format!("cannot sign a JWT: {e}")))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A private CA and a certificate for `127.0.0.1`/`localhost` it signed,
/// written into `dir`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA's certificate (what clients must trust).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Makes them with the `openssl` command.
    pub fn new(dir: &Path) -> Result<Self, LabError> {
        let path = |name: &str| dir.join(name);
        let files = Self {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server-key.pem"),
        };
        let (ca_key, csr, ext) = (path("ca-key.pem"), path("server.csr"), path("san.ext"));
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            .map_err(|e| LabError::io("cannot write the certificate extensions", e))?;
        let p = |path: &Path| path.display().to_string();
        let steps: [Vec<String>; 3] = [
            words("req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vo-test-ca")
                .into_iter()
                .chain(["-keyout".into(), p(&ca_key), "-out".into(), p(&files.ca)])
                .collect(),
            words("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1")
                .into_iter()
                .chain(["-keyout".into(), p(&files.key), "-out".into(), p(&csr)])
                .collect(),
            words("x509 -req -days 2 -CAcreateserial")
                .into_iter()
                .chain([
                    "-in".into(),
                    p(&csr),
                    "-CA".into(),
                    p(&files.ca),
                    "-CAkey".into(),
                    p(&ca_key),
                    "-extfile".into(),
                    p(&ext),
                    "-out".into(),
                    p(&files.cert),
                ])
                .collect(),
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(&args)
                .current_dir(dir)
                .output()
                .map_err(|source| LabError::Spawn {
                    program: "openssl".into(),
                    source,
                })?;
            if !out.status.success() {
                return Err(LabError::Nats(format!(
                    "openssl {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        Ok(files)
    }

    /// The server configuration block that demands TLS with these files.
    pub fn server_config(&self) -> String {
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_three_signed_parts_naming_issuer_and_subject() {
        let op = KeyPair::new_operator();
        let token = jwt(&op, &op.public_key(), "x", json!({"type": "operator"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], op.public_key());
        assert_eq!(claims["sub"], op.public_key());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        op.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("a valid signature");
        let mode = OperatorMode::new().unwrap();
        assert!(mode.user_creds.contains("BEGIN NATS USER JWT"));
        assert!(mode.server_config.contains("resolver: MEMORY"));
    }
}
