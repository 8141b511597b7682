//! Local stand-in for S3 event notifications: the local S3 server (s3s-fs) sends none, so the dev
//! server polls the documents bucket and turns each new, changed or removed object into the same
//! S3 event JSON that AWS would deliver to the embed function.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::AwsError;

/// Characters S3 leaves unencoded in event keys (besides letters and digits).
const S3_KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b'*')
    .remove(b' ');

/// An S3 event key as AWS sends it: URL-encoded, spaces as `+`.
pub fn encode_s3_event_key(key: &str) -> String {
    utf8_percent_encode(key, S3_KEY_SET)
        .to_string()
        .replace(' ', "+")
}

/// The next event sequencer: strictly increasing within the process, as S3's are for the writes
/// of one key (a redelivered event repeats its sequencer; a new write gets a greater one).
pub fn next_sequencer() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("{next:016X}"),
            Err(p) => prev = p,
        }
    }
}

/// One S3 notification with one record, in AWS's shape (with a new sequencer).
pub fn s3_event(event_name: &str, bucket: &str, key: &str, etag: Option<&str>, size: i64) -> Value {
    let now = chrono::Utc::now();
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "eventName": event_name,
            "userIdentity": {"principalId": "local"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "local", "x-amz-id-2": "local"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "ragbot-local-notifications",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "local"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {
                    "key": encode_s3_event_key(key),
                    "size": size,
                    "eTag": etag.unwrap_or_default(),
                    "sequencer": next_sequencer(),
                }
            }
        }]
    })
}

/// What a listing says of one object. s3s-fs lists no ETag, so a change is seen in the
/// modification time (milliseconds) or the size, and the event's ETag comes from HeadObject.
type Listed = (Option<i64>, i64);

/// Polls `bucket` and reports differences as S3 events.
pub struct LocalNotifier {
    s3: aws_sdk_s3::Client,
    bucket: String,
    seen: HashMap<String, Listed>,
}

impl LocalNotifier {
    /// Starts from an empty view: the first poll reports every existing object as created (ingestion
    /// is idempotent, so unchanged objects cost a hash, not an embedding).
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        LocalNotifier {
            s3,
            bucket: bucket.into(),
            seen: HashMap::new(),
        }
    }

    /// One listing; the events for what changed since the previous one.
    pub async fn poll(&mut self) -> Result<Vec<Value>, AwsError> {
        let mut now: HashMap<String, Listed> = HashMap::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk("s3", "ListObjectsV2", e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    let modified = o.last_modified().and_then(|t| t.to_millis().ok());
                    now.insert(key.to_string(), (modified, o.size().unwrap_or(0)));
                }
            }
        }
        let mut created: Vec<_> = now
            .iter()
            .filter(|(k, v)| self.seen.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        // Sidecars first, so a document's metadata is there when it is ingested.
        created.sort_by_key(|k| (!k.ends_with(".metadata.json"), k.clone()));
        let mut events = Vec::new();
        for key in created {
            // What S3 puts in the event: the written object's ETag and size.
            let head = match self
                .s3
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(h) => h,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    now.remove(&key); // gone again since the listing: its removal is reported
                    continue;
                }
                Err(e) => return Err(AwsError::sdk("s3", "HeadObject", e)),
            };
            let etag = head.e_tag().map(|e| e.trim_matches('"').to_string());
            events.push(s3_event(
                "ObjectCreated:Put",
                &self.bucket,
                &key,
                etag.as_deref(),
                head.content_length().unwrap_or(0),
            ));
        }
        for key in self.seen.keys().filter(|k| !now.contains_key(*k)) {
            events.push(s3_event("ObjectRemoved:Delete", &self.bucket, key, None, 0));
        }
        self.seen = now;
        Ok(events)
    }

    /// Polls forever, handing each event to `deliver`.
    pub async fn run<F, Fut>(mut self, interval: Duration, deliver: F)
    where
        F: Fn(Value) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        loop {
            match self.poll().await {
                Ok(events) => {
                    for e in events {
                        deliver(e).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "local S3 notifications: listing failed"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode_s3_key;
    use super::*;

    #[test]
    fn event_keys_round_trip_like_aws() {
        let key = "tenants/acme/My File+1 résumé.txt";
        let encoded = encode_s3_event_key(key);
        assert_eq!(encoded, "tenants/acme/My+File%2B1+r%C3%A9sum%C3%A9.txt");
        assert_eq!(decode_s3_key(&encoded), key);
    }
}
