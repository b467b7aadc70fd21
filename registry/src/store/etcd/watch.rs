//! A watch stream from etcd's JSON gateway: newline-delimited messages,
//! each a batch of changes in revision order.

use super::client::{kv, uint, EtcdError};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::Value;

pub(super) use super::client::Kv;

/// One change from a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Created or overwritten (a heartbeat rewrites the same value).
    Put(Kv),
    /// Deleted: revoked, expired, or deleted on purpose.
    Delete(Kv),
}

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    /// Changes, in revision order.
    Changes(Vec<Change>),
    /// The watch started.
    Created,
    /// History up to this revision was compacted away: re-read everything.
    Compacted(u64),
}

/// An open watch stream: newline-delimited JSON messages.
#[derive(Debug)]
pub struct Watch {
    pub(super) body: hyper::body::Incoming,
    pub(super) buffer: BytesMut,
}

impl Watch {
    /// The next message; `Err` when the stream broke (reconnect).
    pub async fn next(&mut self) -> Result<WatchMessage, EtcdError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Bytes = self.buffer.split_to(end + 1).freeze();
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                let message: Value = serde_json::from_slice(text).map_err(|e| {
                    EtcdError::Unavailable(format!("unreadable watch message: {e}"))
                })?;
                return parse_watch(&message);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(EtcdError::Unavailable(format!("watch broke: {e}"))),
                None => return Err(EtcdError::Unavailable("watch ended".into())),
            }
        }
    }
}

fn parse_watch(message: &Value) -> Result<WatchMessage, EtcdError> {
    if let Some(error) = message.get("error") {
        return Err(EtcdError::Unavailable(format!("watch error: {error}")));
    }
    let result = &message["result"];
    let compacted = uint(&result["compact_revision"]);
    if compacted > 0 {
        return Ok(WatchMessage::Compacted(compacted));
    }
    let Some(events) = result["events"].as_array() else {
        return Ok(WatchMessage::Created);
    };
    let changes = events
        .iter()
        .filter_map(|event| {
            let kv = kv(&event["kv"])?;
            Some(match event["type"].as_str() {
                Some("DELETE") => Change::Delete(kv),
                _ => Change::Put(kv),
            })
        })
        .collect();
    Ok(WatchMessage::Changes(changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_messages_parse() {
        let created: Value =
            serde_json::from_str(r#"{"result":{"header":{"revision":"2"},"created":true}}"#)
                .expect("json");
        assert_eq!(parse_watch(&created).expect("ok"), WatchMessage::Created);
        let events: Value = serde_json::from_str(
            r#"{"result":{"header":{"revision":"3"},"events":[
                {"kv":{"key":"L2E=","create_revision":"2","mod_revision":"2","version":"1","value":"eA==","lease":"7"}},
                {"type":"DELETE","kv":{"key":"L2E=","mod_revision":"3"}}]}}"#,
        )
        .expect("json");
        let WatchMessage::Changes(changes) = parse_watch(&events).expect("ok") else {
            panic!("changes expected");
        };
        assert_eq!(changes.len(), 2);
        assert!(
            matches!(&changes[0], Change::Put(kv) if kv.key == "/a" && kv.value == b"x" && kv.lease == 7)
        );
        assert!(matches!(&changes[1], Change::Delete(kv) if kv.mod_revision == 3));
        let compacted: Value =
            serde_json::from_str(r#"{"result":{"compact_revision":"9","canceled":true}}"#)
                .expect("json");
        assert_eq!(
            parse_watch(&compacted).expect("ok"),
            WatchMessage::Compacted(9)
        );
    }
}
