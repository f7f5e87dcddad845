//! HL7 v2 over MLLP: a TCP listener for legacy EHR and lab feeds. Each framed message is
//! parsed, translated to one FHIR transaction Bundle (`medledger-hl7v2`) and written through
//! the same path as FHIR REST (validated, encrypted, consent-checked, audited, on the ledger),
//! then acknowledged.
//!
//! - Accepted (AA/CA) only once the Bundle has committed; its ACK is remembered, so a message
//!   sent again (same MSH-10 from the same MSH-3/MSH-4) gets the same ACK and no second write.
//! - Refused for its content or type (AE/AR, with an ERR segment): kept, encrypted, in the
//!   dead-letter store with the reason.
//! - When a store is unavailable the connection is closed without an ACK: MLLP senders resend
//!   unacknowledged messages, so nothing is lost and nothing is refused for a transient fault.
//!
//! MLLP carries no credentials: every write acts as one configured feed account
//! ([`FeedCredential`]), under its scopes and the access rules, and the listener should only be
//! reachable from the feeds (`medledger dev` binds loopback).

use std::sync::Arc;
use std::time::Duration;

use medledger_auth::Caller;
use medledger_error::{Categorized, Category, Failure};
use medledger_hl7v2::{
    AckCode, ErrorCondition, FrameDecoder, IdScheme, Message, ParseError, ack_wanted, acknowledge,
    frame, reject_unparsed, translate,
};
use medledger_keys::OwnerKeys;
use medledger_storage_api::{AcceptedMessage, DeadLetter, Hl7MessageLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::Ingest;
use crate::config::MllpConfig;

/// Longest wait for the peer to take an acknowledgement.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time one message may take to arrive once it has started.
const FRAME_TIMEOUT: Duration = Duration::from_secs(60);

/// The account MLLP writes act as (the protocol itself carries no credentials).
#[async_trait::async_trait]
pub trait FeedCredential: Send + Sync + 'static {
    /// A caller with a currently valid token.
    async fn caller(&self) -> Result<Caller, Failure>;
}

/// A feed account whose bearer token is in a file (`mllp.token_file`), verified like any
/// request's and read again for each message, so it can be renewed in place.
#[derive(Debug)]
pub struct TokenFileFeed {
    /// The token file.
    pub path: std::path::PathBuf,
    /// Verifies it.
    pub verifier: medledger_auth::TokenVerifier,
}

#[async_trait::async_trait]
impl FeedCredential for TokenFileFeed {
    async fn caller(&self) -> Result<Caller, Failure> {
        let unusable = |why: String| {
            Failure::new(
                Category::Unavailable {
                    retry_after_secs: 5,
                },
                why,
            )
        };
        let token = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| unusable(format!("reading {}: {e}", self.path.display())))?;
        let token = token.trim();
        let claims = self
            .verifier
            .verify(token)
            .map_err(|e| unusable(format!("the feed token: {e}")))?;
        Ok(Caller::new(claims, token))
    }
}

/// A feed account whose tokens are minted from an issuer key held here (`medledger dev`'s
/// `Organization/mllp-feed`), short-lived like any token and minted again a minute before each
/// expires.
pub struct MintedFeed {
    issuer: medledger_auth::IssuerKey,
    verifier: medledger_auth::TokenVerifier,
    subject: String,
    current: std::sync::Mutex<Option<(Caller, i64)>>,
}

impl std::fmt::Debug for MintedFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedFeed")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl MintedFeed {
    /// An organization feed `subject` (scopes `system/*.cu`) with tokens from `issuer`.
    pub fn new(
        issuer: medledger_auth::IssuerKey,
        verifier: medledger_auth::TokenVerifier,
        subject: &str,
    ) -> Self {
        Self {
            issuer,
            verifier,
            subject: subject.to_owned(),
            current: std::sync::Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl FeedCredential for MintedFeed {
    async fn caller(&self) -> Result<Caller, Failure> {
        let now = medledger_auth::unix_now();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((caller, exp)) = current.as_ref()
            && *exp - now > 60
        {
            return Ok(caller.clone());
        }
        let ttl = 300;
        let token = self
            .issuer
            .mint(&self.subject, "organization", "system/*.cu", now, ttl);
        let claims = self
            .verifier
            .verify(&token)
            .map_err(|e| Failure::new(Category::Internal, format!("feed token: {e}")))?;
        let caller = Caller::new(claims, &token);
        *current = Some((caller.clone(), now + ttl));
        Ok(caller)
    }
}

/// Resource ids from the owner keys' pseudonym key: stable per natural key, and revealing none.
#[derive(Clone)]
pub struct PseudonymIds(pub OwnerKeys);

impl IdScheme for PseudonymIds {
    fn stable_id(&self, label: &str) -> String {
        // 64 hex characters: exactly FHIR's longest id.
        self.0.pseudonym(label)
    }
}

/// Whether a write lost a race with another (and is worth trying again on the new state).
fn is_conflict(c: Category) -> bool {
    matches!(c, Category::Conflict | Category::PreconditionFailed)
}

/// The one mapping of an error category to an HL7 v2 acknowledgement: the HL7 table 0357 code
/// of the AE sent for a refused message, or `None` for a failure of the server (a store, the
/// key material, consent over gRPC, the rate limit), which is not acknowledged at all, so the
/// sender resends rather than drops the message.
pub fn refusal_code(c: Category) -> Option<u16> {
    if c.is_failure() || c.is_transient() {
        None
    } else if is_conflict(c) {
        Some(206)
    } else {
        Some(207)
    }
}

/// Writes of one message tried before a conflict is reported (AE 206).
const CONFLICT_ATTEMPTS: u64 = 5;

/// Owner of the key that seals dead letters.
const DEAD_LETTER_OWNER: &str = "hl7v2/dead-letters";
/// Associated data binding a sealed dead letter to its row.
fn dead_letter_aad(id: &str) -> Vec<u8> {
    format!("medledger/hl7v2-dead-letter/{id}").into_bytes()
}

/// A store or the credential failed: close without acknowledging, so the sender resends.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// Handles one message at a time; shared by every connection.
#[derive(Clone)]
pub struct Receiver {
    ingest: Ingest,
    log: Arc<dyn Hl7MessageLog>,
    credential: Arc<dyn FeedCredential>,
    ids: PseudonymIds,
}

impl Receiver {
    /// Wires the receiver to the write path, its log and the feed account.
    pub fn new(
        ingest: Ingest,
        log: Arc<dyn Hl7MessageLog>,
        credential: Arc<dyn FeedCredential>,
    ) -> Self {
        let ids = PseudonymIds(ingest.keys.clone());
        Self {
            ingest,
            log,
            credential,
            ids,
        }
    }

    /// The acknowledgement to send for one MLLP payload, once its outcome is durable; `None`
    /// when the sender asked for none (enhanced mode, MSH-15).
    pub async fn handle(&self, payload: &[u8]) -> Result<Option<String>, Unavailable> {
        let (ack, wanted) = self.answer(payload).await?;
        Ok(wanted.then_some(ack))
    }

    /// Keeps bytes that could not be framed (data outside a frame, a frame over the size
    /// limit, cut at it) as a dead letter, and returns the reject to send before closing.
    pub async fn refuse_unframed(&self, bytes: &[u8], why: &str) -> Result<String, Unavailable> {
        let condition = ErrorCondition::new(AckCode::Reject, 100, why);
        self.dead_letter("", "", &condition, bytes, unix_ms())
            .await?;
        Ok(reject_unparsed(
            &condition,
            &uuid::Uuid::new_v4().simple().to_string(),
            &hl7_timestamp(),
        ))
    }

    /// The acknowledgement of one payload, and whether the sender wants it.
    async fn answer(&self, payload: &[u8]) -> Result<(String, bool), Unavailable> {
        let now_ms = unix_ms();
        let ts = hl7_timestamp();
        let ack_id = uuid::Uuid::new_v4().simple().to_string();
        let msg = match Message::from_bytes(payload) {
            Ok(m) => m,
            Err(e) => {
                let code = match e {
                    ParseError::MissingHeaderField(_) => 101,
                    ParseError::BadEncodingCharacters => 102,
                    _ => 100,
                };
                let why = ErrorCondition::new(AckCode::Reject, code, e.to_string());
                self.dead_letter("", "", &why, payload, now_ms).await?;
                tracing::info!(code, "MLLP message refused: {e}");
                // Without a header there is no MSH-15 to ask otherwise.
                return Ok((reject_unparsed(&why, &ack_id, &ts), true));
            }
        };
        let sender = msg.sender();
        let control_id = msg.control_id();
        // Keyed, so the log holds no bare hash of PHI; ISO 8859-1 decoding keeps every byte.
        let digest = self.ingest.keys.pseudonym(&format!(
            "hl7v2/message|{}",
            medledger_hl7v2::decode_text(payload)
        ));
        let seen = self
            .log
            .accepted(&sender, &control_id)
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        let (m, from, cid, aid, at) = (&msg, &sender, &control_id, &ack_id, &ts);
        let refuse = |why: ErrorCondition| async move {
            self.dead_letter(from, cid, &why, payload, now_ms).await?;
            let (kind, event) = m.message_type();
            tracing::info!(%kind, %event, code = why.code, reason = %why.text, "MLLP message refused");
            Ok((acknowledge(m, Some(&why), aid, at), ack_wanted(m, false)))
        };
        match seen {
            Some(earlier) if earlier.digest == digest => {
                tracing::debug!("MLLP message already accepted; acknowledged again");
                return Ok((earlier.ack, ack_wanted(&msg, true)));
            }
            // A reused control id (a sender's counter reset): not the message accepted before,
            // so neither acknowledged as it nor stored over it; kept for an operator.
            Some(_) => {
                return refuse(ErrorCondition::new(
                    AckCode::Error,
                    207,
                    "MSH-10 (message control id) was already used by this sender for another message",
                )
                .at("MSH", 10))
                .await;
            }
            None => {}
        }
        let translation = match translate(&msg, &self.ids) {
            Ok(t) => t,
            Err(why) => return refuse(why).await,
        };
        let caller = self
            .credential
            .caller()
            .await
            .map_err(|e| Unavailable(format!("the feed credential: {}", e.message)))?;
        // Two messages about one patient or visit may race (feeds send on several
        // connections): the loser's write conflicts, and is simply tried again on the new state.
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            let stored = self.stored(&translation.create_only).await?;
            match self
                .ingest
                .bundle(&caller, translation.bundle(&stored))
                .await
            {
                Err(e) if is_conflict(e.category()) && attempt < CONFLICT_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(5 * attempt)).await;
                }
                other => break other,
            }
        };
        match written {
            Ok(_) => {
                let ack = acknowledge(&msg, None, &ack_id, &ts);
                let remembered = AcceptedMessage {
                    digest,
                    ack: ack.clone(),
                };
                if let Err(e) = self
                    .log
                    .record_accepted(&sender, &control_id, &remembered, now_ms)
                    .await
                {
                    // Stored, so acknowledged; a resend would rewrite the same ids.
                    tracing::warn!(error = %e, "could not remember an accepted MLLP message");
                }
                Ok((ack, ack_wanted(&msg, true)))
            }
            Err(e) => match refusal_code(e.category()) {
                None => Err(Unavailable(e.diagnostics())),
                Some(code) => {
                    let why = ErrorCondition::new(
                        AckCode::Error,
                        code,
                        format!("refused by the record store: {}", e.diagnostics()),
                    );
                    refuse(why).await
                }
            },
        }
    }

    /// Which of `keys` (a result's Patient and Encounter) are stored already: those are not
    /// written, since the ADT feed owns them.
    async fn stored(&self, keys: &[String]) -> Result<Vec<String>, Unavailable> {
        let mut stored = Vec::new();
        for key in keys {
            let (rt, id) = key.split_once('/').unwrap_or_default();
            let head = self
                .ingest
                .index
                .head(rt, id)
                .await
                .map_err(|e| Unavailable(e.to_string()))?;
            if head.is_some() {
                stored.push(key.clone());
            }
        }
        Ok(stored)
    }

    async fn dead_letter(
        &self,
        sender: &str,
        control_id: &str,
        why: &ErrorCondition,
        payload: &[u8],
        now_ms: i64,
    ) -> Result<(), Unavailable> {
        let key = self
            .ingest
            .keys
            .get_or_create(DEAD_LETTER_OWNER)
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = medledger_crypto::seal(&key, &dead_letter_aad(&id), payload);
        self.log
            .dead_letter(&DeadLetter {
                id,
                received_at_ms: now_ms,
                sender: sender.to_owned(),
                control_id: control_id.to_owned(),
                code: why.code,
                reason: why.text.clone(),
                sealed,
            })
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        Ok(())
    }
}

/// The message a dead letter holds, decrypted (for an operator who reads or replays it: this
/// is PHI). `None` when no dead letter was ever sealed with these keys.
pub async fn open_dead_letter(
    keys: &OwnerKeys,
    letter: &DeadLetter,
) -> Result<Option<Vec<u8>>, String> {
    let Some(key) = keys
        .get(DEAD_LETTER_OWNER)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    medledger_crypto::open(&key, &dead_letter_aad(&letter.id), &letter.sealed)
        .map(|p| Some(p.to_vec()))
        .map_err(|e| format!("dead letter {}: {e}", letter.id))
}

fn unix_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Now as an HL7 DTM in UTC.
fn hl7_timestamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Serves MLLP on `listener` until `shutdown`; messages in flight finish first.
pub async fn serve(
    listener: TcpListener,
    receiver: Receiver,
    config: MllpConfig,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Connections per peer address, so one host cannot take every slot.
    let per_peer: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    let mut running = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
        };
        // Forget the connections that have ended.
        while running.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "MLLP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "MLLP connection refused: too many connections");
            continue;
        };
        let Some(peer_slot) = PeerSlot::take(&per_peer, peer.ip(), config.max_connections_per_peer)
        else {
            tracing::warn!(%peer, "MLLP connection refused: too many connections from this address");
            continue;
        };
        let (receiver, config, stop) = (receiver.clone(), config.clone(), shutdown.clone());
        running.spawn(async move {
            if let Err(why) = connection(stream, &receiver, &config, stop).await {
                tracing::warn!(%peer, "MLLP connection closed: {why}");
            }
            drop((slot, peer_slot));
        });
    }
    // Messages in flight finish (and are acknowledged) before the listener returns; each
    // connection stops at its next read.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "MLLP connections still busy at shutdown; unacknowledged messages are resent"
        );
    }
}

/// One connection counted against its peer address while it lives.
struct PeerSlot {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl PeerSlot {
    fn take(
        counts: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
        limit: usize,
    ) -> Option<Self> {
        let mut map = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    receiver: &Receiver,
    config: &MllpConfig,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut decoder = FrameDecoder::new(config.max_message_bytes);
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let mut buf = vec![0u8; 64 << 10];
    // When the message being received must be complete: a peer trickling bytes cannot hold a
    // connection slot longer than this per message.
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    loop {
        loop {
            let reply = match decoder.next_frame() {
                Ok(Some(payload)) => {
                    frame_deadline = None;
                    receiver
                        .handle(&payload)
                        .await
                        .map_err(|Unavailable(why)| format!("not acknowledged ({why})"))?
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: keep what came, say why, close.
                    let kept = decoder.take_buffered();
                    let nak = receiver
                        .refuse_unframed(&kept, &e.to_string())
                        .await
                        .map_err(|Unavailable(why)| format!("{e}; not kept ({why})"))?;
                    let _ = tokio::time::timeout(
                        WRITE_TIMEOUT,
                        stream.write_all(&frame(nak.as_bytes())),
                    )
                    .await;
                    return Err(e.to_string());
                }
            };
            let Some(reply) = reply else {
                continue;
            };
            tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame(reply.as_bytes())))
                .await
                .map_err(|_| "the peer did not take its acknowledgement".to_owned())?
                .map_err(|e| e.to_string())?;
        }
        if decoder.has_partial() && frame_deadline.is_none() {
            frame_deadline = Some(tokio::time::Instant::now() + FRAME_TIMEOUT);
        }
        let wait = match frame_deadline {
            Some(d) => d
                .saturating_duration_since(tokio::time::Instant::now())
                .min(idle),
            None => idle,
        };
        let read = tokio::select! {
            r = tokio::time::timeout(wait, stream.read(&mut buf)) => r,
            () = shutdown.cancelled() => return Ok(()),
        };
        let Ok(read) = read else {
            if frame_deadline.is_some() {
                // Nothing acknowledged: the sender resends the whole message.
                return Err("a message took too long to arrive".into());
            }
            // Idle: feeds reconnect when they have something to send.
            return Ok(());
        };
        let n = read.map_err(|e| e.to_string())?;
        if n == 0 {
            return if decoder.has_partial() {
                Err("closed in the middle of a message".into())
            } else {
                Ok(())
            };
        }
        decoder.push(&buf[..n]);
    }
}
