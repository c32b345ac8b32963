//! The reference server embedded in the app (crates/server, with the echo bot), started on
//! loopback when no other server is configured so that a first call works at once.

use std::net::SocketAddr;
use std::path::Path;

use calldock_server::{RunningServer, ServerConfig};

/// The database file in the app data dir: users, call history and the token key survive
/// restarts, so history stays and a saved session stays valid.
pub const DATABASE: &str = "built-in-server.db";

/// Starts the server on a free loopback port. The echo bot's media stays on loopback too
/// (`ServerConfig::default`), so nothing is reachable from the network.
pub async fn start(data_dir: &Path) -> anyhow::Result<RunningServer> {
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let db = data_dir.join(DATABASE);
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        tracing::warn!(dir = %data_dir.display(), error = %e, "no data dir for the built-in server");
    }
    let server =
        match calldock_server::start(ServerConfig { listen, db: Some(db.clone()), ..ServerConfig::default() }).await {
            Ok(server) => server,
            Err(e) => {
                // An unreadable database must not stop the app: run from memory (history is not
                // kept) and say so.
                tracing::warn!(db = %db.display(), error = %format!("{e:#}"), "built-in server without its database");
                calldock_server::start(ServerConfig { listen, db: None, ..ServerConfig::default() }).await?
            }
        };
    // Scripts and the smoke test read this line to find the server.
    println!("calldock: built-in server listening on {}", server.base_url());
    Ok(server)
}
