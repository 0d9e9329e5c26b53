//! HTTPS for the simulator, as a real API server serves it: a freshly
//! generated cluster CA (made with `rcgen`, never written to disk unless the
//! kubeconfig is) signs a serving certificate for `localhost`, `127.0.0.1`
//! and the listening address. Clients trust the CA through the kubeconfig's
//! `certificate-authority-data`, exactly as with a real cluster.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A generated cluster CA and the serving certificate it signed.
pub struct SimTls {
    /// The CA certificate, PEM: what goes into `certificate-authority-data`.
    pub ca_pem: String,
    /// The rustls server configuration (serving certificate + key).
    pub server_config: Arc<rustls::ServerConfig>,
}

fn err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("generating the simulator's TLS certificates: {e}"))
}

/// Generates a CA and a serving certificate valid for `addr`, `localhost`
/// and `127.0.0.1`.
pub fn generate(addr: SocketAddr) -> std::io::Result<SimTls> {
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "orchestrator-sim-ca");
    ca.distinguished_name = dn;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(err)?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ip = addr.ip().to_string();
    if !names.contains(&ip) && !addr.ip().is_unspecified() {
        names.push(ip);
    }
    let mut leaf = CertificateParams::new(names).map_err(err)?;
    // `kubernetes` is the name in-cluster clients use; harmless elsewhere.
    leaf.subject_alt_names
        .push(SanType::DnsName("kubernetes".try_into().map_err(err)?));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "orchestrator-sim-apiserver");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(err)?;
    // kubectl and kube-rs negotiate HTTP/2 or HTTP/1.1; serve HTTP/1.1.
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SimTls {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(server_config),
    })
}
