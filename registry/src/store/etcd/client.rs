//! A small client for etcd's v3 JSON gateway, over the hyper client the
//! library already uses.
//!
//! etcd 3.4 serves its gRPC API as JSON at `/v3/...` on the client port.
//! Keys and values travel base64-encoded, 64-bit integers as strings.
//! Calls fail over across the cluster's URLs like the registry client does.

use super::watch::Watch;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use beacon_net::{
    backoff::Backoff,
    failover::{exchange, Failed, Failover, Step},
    http::{http_client, HttpClient},
};
use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use serde_json::{json, Value};
use std::time::Duration;

/// Largest answer read (a range over many thousands of instances).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// How long a call keeps retrying while no member can answer (a leader
/// election takes about one election timeout) before reporting etcd away.
const RETRY_FOR: Duration = Duration::from_secs(2);

/// Why an etcd call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    /// No member answered.
    #[error("etcd unreachable: {0}")]
    Unavailable(String),
    /// A member answered with an error.
    #[error("etcd refused: {0}")]
    Rejected(String),
}

/// A key-value pair as etcd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value (empty for deletions).
    pub value: Vec<u8>,
    /// The revision that created this incarnation of the key.
    pub create_revision: u64,
    /// The revision of its last change.
    pub mod_revision: u64,
    /// Its lease, 0 for none.
    pub lease: i64,
}

/// A client for one etcd cluster.
#[derive(Debug)]
pub struct EtcdClient {
    /// The members' client URLs, tried from the one that answered last.
    members: Failover,
    http: HttpClient,
    timeout: Duration,
}

impl EtcdClient {
    /// A client for `urls` (client URLs of the cluster's members).
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            members: Failover::new(
                urls.into_iter()
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .collect(),
            ),
            http: http_client(Duration::from_millis(500)),
            timeout: Duration::from_secs(3),
        }
    }

    /// Grants a lease of `ttl_secs`; returns its id.
    pub async fn grant(&self, ttl_secs: u64) -> Result<i64, EtcdError> {
        let answer = self
            .call("/v3/lease/grant", json!({"TTL": ttl_secs}))
            .await?;
        let id = int(&answer["ID"]);
        if id == 0 {
            return Err(EtcdError::Rejected(format!("lease grant: {answer}")));
        }
        Ok(id)
    }

    /// Renews a lease; `false` if it no longer exists.
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        Ok(int(&answer["result"]["TTL"]) > 0)
    }

    /// Revokes a lease, deleting its keys; returns the revision after.
    pub async fn revoke(&self, lease: i64) -> Result<u64, EtcdError> {
        let answer = self
            .call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await?;
        Ok(uint(&answer["header"]["revision"]))
    }

    /// Puts `value` at `key` on `lease`; returns the revision.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<u64, EtcdError> {
        let answer = self
            .call("/v3/kv/put", json!({"key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string()}))
            .await?;
        Ok(uint(&answer["header"]["revision"]))
    }

    /// Puts `value` at `key` on `lease` only if the key still exists in the
    /// incarnation created at `create_revision` (a heartbeat: no index key).
    pub async fn put_if_same(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        create_revision: u64,
    ) -> Result<bool, EtcdError> {
        let compare = [equal(key, "CREATE", "create_revision", create_revision)];
        let (succeeded, _) = self.txn(&compare, &[put(key, value, lease)]).await?;
        Ok(succeeded)
    }

    /// A membership change: puts `value` at `key` on `lease` and touches
    /// `index_key` in the same revision, which it returns.
    pub async fn put_member(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
        index_key: &str,
    ) -> Result<u64, EtcdError> {
        let (_, revision) = self
            .txn(&[], &[put(key, value, lease), put(index_key, b"", 0)])
            .await?;
        Ok(revision)
    }

    /// A membership change: deletes `key` only if it was last changed at
    /// `mod_revision` (expiry), touching `index_key` in the same revision.
    pub async fn delete_member_if_unchanged(
        &self,
        key: &str,
        mod_revision: u64,
        index_key: &str,
    ) -> Result<bool, EtcdError> {
        let compare = [equal(key, "MOD", "mod_revision", mod_revision)];
        let (succeeded, _) = self
            .txn(&compare, &[delete(key), put(index_key, b"", 0)])
            .await?;
        Ok(succeeded)
    }

    /// Deletes `key` only if it was last changed at `mod_revision` (a
    /// shared lease's key, run out: no index key). Whether it did.
    pub async fn delete_if_unchanged(
        &self,
        key: &str,
        mod_revision: u64,
    ) -> Result<bool, EtcdError> {
        let compare = [equal(key, "MOD", "mod_revision", mod_revision)];
        let (succeeded, _) = self.txn(&compare, &[delete(key)]).await?;
        Ok(succeeded)
    }

    /// A membership change: deletes `key` whatever its incarnation
    /// (deregistration), touching `index_key` in the same revision. Returns
    /// the revision and the lease the key was on, or `None` if there was
    /// no such key.
    pub async fn delete_member(
        &self,
        key: &str,
        index_key: &str,
    ) -> Result<Option<(u64, i64)>, EtcdError> {
        let compare = [
            json!({"key": B64.encode(key), "target": "VERSION", "result": "GREATER", "version": "0"}),
        ];
        let (succeeded, answer) = self
            .txn_answer(&compare, &[delete(key), put(index_key, b"", 0)])
            .await?;
        if !succeeded {
            return Ok(None);
        }
        let lease = int(&answer["responses"][0]["response_delete_range"]["prev_kvs"][0]["lease"]);
        Ok(Some((uint(&answer["header"]["revision"]), lease)))
    }

    /// Touches `index_key` only if it was last changed at `mod_revision`
    /// (0: it does not exist): records a change etcd made by itself (a
    /// lease running out) as the service's index. `false` if another write
    /// got there first.
    pub async fn touch_index_if(
        &self,
        index_key: &str,
        mod_revision: u64,
    ) -> Result<bool, EtcdError> {
        let compare = [equal(index_key, "MOD", "mod_revision", mod_revision)];
        let (succeeded, _) = self.txn(&compare, &[put(index_key, b"", 0)]).await?;
        Ok(succeeded)
    }

    /// One transaction: `success` if every `compare` holds. Whether it did,
    /// and the revision after it.
    async fn txn(&self, compare: &[Value], success: &[Value]) -> Result<(bool, u64), EtcdError> {
        let (succeeded, answer) = self.txn_answer(compare, success).await?;
        Ok((succeeded, uint(&answer["header"]["revision"])))
    }

    async fn txn_answer(
        &self,
        compare: &[Value],
        success: &[Value],
    ) -> Result<(bool, Value), EtcdError> {
        let body = json!({"compare": compare, "success": success});
        let answer = self.call("/v3/kv/txn", body).await?;
        // etcd leaves `succeeded` out when false, and a txn without
        // comparisons always succeeds.
        let succeeded = answer["succeeded"].as_bool().unwrap_or(false) || compare.is_empty();
        Ok((succeeded, answer))
    }

    /// Every key under `prefix`, and the revision they were read at.
    pub async fn range_prefix(&self, prefix: &str) -> Result<(u64, Vec<Kv>), EtcdError> {
        let body = json!({"key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix))});
        let answer = self.call("/v3/kv/range", body).await?;
        let kvs = answer["kvs"]
            .as_array()
            .map(|a| a.iter().filter_map(kv).collect())
            .unwrap_or_default();
        Ok((uint(&answer["header"]["revision"]), kvs))
    }

    /// A linearizable read of one key under `prefix`: it succeeds only
    /// through a member with a quorum behind it, so it says whether etcd
    /// can take writes now (a member cut off from the others still answers
    /// a status request, or a serializable read).
    ///
    /// Each member gets `patience` (a member cut off from its leader may
    /// hold a read for seconds before it says so) and the next is tried;
    /// no retries: the caller asks again soon.
    pub async fn quorum_read(&self, prefix: &str, patience: Duration) -> Result<(), EtcdError> {
        let body = json!({"key": B64.encode(prefix), "limit": "1", "keys_only": true});
        let answer = self
            .members
            .call(|url| self.call_one(url, "/v3/kv/range", &body, patience))
            .await;
        unavailable_or(answer).map(drop)
    }

    /// Opens a watch on every key under `prefix`, from `start_revision`.
    pub async fn watch(&self, prefix: &str, start_revision: u64) -> Result<Watch, EtcdError> {
        let body = json!({"create_request": {
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let opened = self
            .members
            .call(|url| {
                let request = json_request(&format!("{url}/v3/watch"), &body);
                async move {
                    let request = request.map_err(|e| Step::Stop(EtcdError::Rejected(e)))?;
                    match tokio::time::timeout(self.timeout, self.http.request(request)).await {
                        Ok(Ok(response)) if response.status().is_success() => Ok(Watch {
                            body: response.into_body(),
                            buffer: BytesMut::new(),
                        }),
                        Ok(Ok(response)) => Err(Step::TryNext(response.status().to_string())),
                        Ok(Err(e)) => Err(Step::TryNext(e.to_string())),
                        Err(_) => Err(Step::TryNext("no answer".into())),
                    }
                }
            })
            .await;
        unavailable_or(opened)
    }

    /// One unary call, failing over across members, and retrying for a
    /// moment when none can answer: a cluster electing a new leader answers
    /// again within an election timeout, and callers should not see that.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let give_up = tokio::time::Instant::now() + RETRY_FOR;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
        loop {
            match self.call_members(path, &body).await {
                Err(EtcdError::Unavailable(reason)) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!("etcd {path}: {reason}; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    async fn call_members(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let answer = self
            .members
            .call(|url| self.call_one(url, path, body, self.timeout))
            .await;
        unavailable_or(answer)
    }

    /// One call to one member: a 5xx (no leader, or cut off from the
    /// quorum) or no answer tries another; any other error is final.
    async fn call_one(
        &self,
        url: String,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, Step<EtcdError>> {
        let request = json_request(&format!("{url}{path}"), body)
            .map_err(|e| Step::Stop(EtcdError::Rejected(e)))?;
        let (status, bytes) = exchange(&self.http, request, timeout, MAX_ANSWER)
            .await
            .map_err(Step::TryNext)?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Step::TryNext(format!("{status}: unreadable answer: {e}")))?;
        if status.is_success() && answer.get("error").is_none() {
            Ok(answer)
        } else if status.is_server_error() {
            Err(Step::TryNext(format!("{status}: {answer}")))
        } else {
            Err(Step::Stop(EtcdError::Rejected(format!(
                "{status}: {answer}"
            ))))
        }
    }
}

/// A call's result, with "no member answered" as [`EtcdError::Unavailable`].
fn unavailable_or<T>(result: Result<T, Failed<EtcdError>>) -> Result<T, EtcdError> {
    result.map_err(|failed| match failed {
        Failed::Stopped(error) => error,
        Failed::Unreachable(failures) => EtcdError::Unavailable(failures.join("; ")),
    })
}

/// A comparison that `key`'s `target` (named `field` in JSON) equals `value`.
fn equal(key: &str, target: &str, field: &str, value: u64) -> Value {
    json!({"key": B64.encode(key), "target": target, "result": "EQUAL", field: value.to_string()})
}

/// A put inside a transaction (`lease` 0: none).
fn put(key: &str, value: &[u8], lease: i64) -> Value {
    json!({"request_put": {"key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string()}})
}

/// A delete inside a transaction, reporting what it deleted.
fn delete(key: &str) -> Value {
    json!({"request_delete_range": {"key": B64.encode(key), "prev_kv": true}})
}

fn json_request(url: &str, body: &Value) -> Result<http::Request<Full<Bytes>>, String> {
    http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())
}

pub(super) fn kv(value: &Value) -> Option<Kv> {
    let key = B64.decode(value["key"].as_str()?).ok()?;
    let data = match value["value"].as_str() {
        Some(v) => B64.decode(v).ok()?,
        None => Vec::new(),
    };
    Some(Kv {
        key: String::from_utf8(key).ok()?,
        value: data,
        create_revision: uint(&value["create_revision"]),
        mod_revision: uint(&value["mod_revision"]),
        lease: int(&value["lease"]),
    })
}

/// The end of the key range that holds every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// etcd's JSON carries 64-bit integers as strings, and leaves out zeros.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

pub(super) fn uint(value: &Value) -> u64 {
    u64::try_from(int(value)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_cover_the_prefix() {
        assert_eq!(prefix_end("/beacon/"), b"/beacon0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
