//! The caller's conversations: list, create, read with messages, delete, and feedback on an
//! answer. Each is one tenant-scoped transaction; another owner's conversation is "not found".

use uuid::Uuid;

use super::{owner_of, ChatError};
use crate::{
    auth::Principal,
    store::{
        conversations::{self, Conversation, StoredMessage},
        Store,
    },
};

/// One page of the caller's conversations, newest first, after `after` (the previous page's
/// last id); `limit` is 1–200.
pub async fn list(
    store: &Store,
    who: &Principal,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Conversation>, ChatError> {
    if !(1..=200).contains(&limit) {
        return Err(ChatError::Invalid("limit must be between 1 and 200".into()));
    }
    let tx = store.begin(&who.tenant).await?;
    let page = conversations::list(&tx, &owner_of(who), after, limit).await?;
    tx.commit().await?;
    Ok(page)
}

/// A new, empty conversation of the caller.
pub async fn create(
    store: &Store,
    who: &Principal,
    title: Option<&str>,
) -> Result<Conversation, ChatError> {
    if title.is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(ChatError::Invalid(
            "title contains control characters".into(),
        ));
    }
    let tx = store.begin(&who.tenant).await?;
    let c = conversations::create(&tx, None, &owner_of(who), title).await?;
    tx.commit().await?;
    Ok(c)
}

/// One of the caller's conversations with its messages, oldest first.
pub async fn get(
    store: &Store,
    who: &Principal,
    id: Uuid,
) -> Result<(Conversation, Vec<StoredMessage>), ChatError> {
    let tx = store.begin(&who.tenant).await?;
    let Some(c) = conversations::get(&tx, id, &owner_of(who)).await? else {
        tx.commit().await?;
        return Err(ChatError::ConversationNotFound(id));
    };
    let messages = conversations::messages(&tx, id).await?;
    tx.commit().await?;
    Ok((c, messages))
}

/// Deletes one of the caller's conversations with its messages.
pub async fn delete(store: &Store, who: &Principal, id: Uuid) -> Result<(), ChatError> {
    let tx = store.begin(&who.tenant).await?;
    let deleted = conversations::delete(&tx, id, &owner_of(who)).await?;
    tx.commit().await?;
    if deleted {
        Ok(())
    } else {
        Err(ChatError::ConversationNotFound(id))
    }
}

/// Records the caller's rating (and comment, at most 2000 characters) of an answer in one of
/// their conversations.
pub async fn set_feedback(
    store: &Store,
    who: &Principal,
    id: Uuid,
    message_id: Uuid,
    rating: &str,
    comment: Option<&str>,
) -> Result<StoredMessage, ChatError> {
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(ChatError::Invalid(
            "comment is longer than 2000 characters".into(),
        ));
    }
    let tx = store.begin(&who.tenant).await?;
    if !conversations::owned(&tx, id, &owner_of(who)).await? {
        tx.commit().await?;
        return Err(ChatError::ConversationNotFound(id));
    }
    let stored = conversations::set_feedback(&tx, id, message_id, rating, comment).await?;
    tx.commit().await?;
    stored.ok_or(ChatError::MessageNotFound(message_id))
}
