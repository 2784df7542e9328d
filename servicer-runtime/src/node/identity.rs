//! Loading and saving the node's key.

use std::fs;
use std::io::Write;
use std::path::Path;

use libp2p::identity::Keypair;

use crate::RpcError;

/// Loads the key at `path`, or creates a new Ed25519 key there if the file does not exist.
pub fn load_or_create_identity(path: &Path) -> Result<Keypair, RpcError> {
    match fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            RpcError::Setup(format!(
                "identity file {} is not a libp2p private key: {e}",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            save_identity(&keypair, path)?;
            Ok(keypair)
        }
        Err(err) => Err(RpcError::Setup(format!(
            "cannot read identity file {}: {err}",
            path.display()
        ))),
    }
}

fn save_identity(keypair: &Keypair, path: &Path) -> Result<(), RpcError> {
    let setup = |what: &str, err: &dyn std::fmt::Display| {
        RpcError::Setup(format!(
            "cannot {what} identity file {}: {err}",
            path.display()
        ))
    };
    let bytes = keypair
        .to_protobuf_encoding()
        .map_err(|e| setup("encode", &e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| setup("create the folder of", &e))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| setup("create", &e))?;
    file.write_all(&bytes).map_err(|e| setup("write", &e))
}
