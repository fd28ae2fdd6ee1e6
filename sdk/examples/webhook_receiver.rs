//! A webhook receiver: checks each delivery with `webhooks::verify`, skips
//! an event it has already seen (delivery is at least once: the same
//! `webhook-id` can come again), prints the event and answers 204. A
//! delivery that fails the check gets 401 and is not acted on.
//!
//! Create the webhook first (its secret is shown only in that answer), then
//! start the receiver with it; what failed in between is retried. Against
//! the sandbox (`scripts/sandbox.sh`, which allows `http://` and local
//! addresses as webhook URLs):
//!
//! ```sh
//! curl -s http://127.0.0.1:8080/webhooks -H "Authorization: Bearer $ADMIN_TOKEN" \
//!   -H 'Content-Type: application/json' -d '{"url":"http://127.0.0.1:9000/inboxlink"}'
//! # -> 201 {"id":"…","secret":"whsec_…",…}
//! WEBHOOK_SECRET=whsec_… cargo run -p inboxlink-sdk --example webhook_receiver -- 127.0.0.1:9000
//! curl -s -X POST http://127.0.0.1:8080/webhooks/<id>/test -H "Authorization: Bearer $ADMIN_TOKEN"
//! ```
//!
//! A real receiver is reached over `https://` at a public address, and keeps
//! the ids it has seen where they survive a restart (a database table with a
//! unique key), at least for as long as Inboxlink retries (about 28 hours).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use inboxlink_sdk::webhooks;

/// How many recent event ids are remembered.
const REMEMBERED: usize = 10_000;

/// The ids of the events handled, oldest first.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Records `id`; false when it was there already.
    fn insert(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

struct State {
    secret: String,
    seen: Mutex<Seen>,
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    // actix-web's headers are from another `http` version: pass them as pairs.
    let event = match webhooks::verify_pairs(&state.secret, req.headers().iter(), &body) {
        Ok(event) => event,
        Err(e) => {
            eprintln!("refused a delivery to {}: {e}", req.path());
            return HttpResponse::Unauthorized().body(e.to_string());
        }
    };
    let new = state
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(&event.id);
    if new {
        println!(
            "{} {} {} {}",
            event.timestamp.to_rfc3339(),
            event.event_type,
            event.id,
            event.data
        );
    } else {
        eprintln!("{} again: already handled", event.id);
    }
    HttpResponse::NoContent().finish()
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("WEBHOOK_SECRET")
        .map_err(|_| "set WEBHOOK_SECRET to the webhook's secret (whsec_…)")?;
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let state = web::Data::new(State {
        secret,
        seen: Mutex::new(Seen::default()),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .default_service(web::to(receive))
    })
    .workers(2)
    .bind(&addr)?;
    for a in server.addrs() {
        eprintln!("listening on http://{a}/ (any path); Ctrl-C stops");
    }
    server.run().await?;
    Ok(())
}
