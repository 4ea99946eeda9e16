//! The device inventory, and revoking one device (a lost or stolen laptop): its credential
//! stops working and its agent wipes the key and Claude Code's login at once if connected, or
//! when it next reaches any replica.

use super::people::DeviceView;
use super::{decode_cursor, encode_cursor, page_size, AdminError, AdminResult, Capability};
use super::{Page, Principal};
use crate::store::Store;

/// One page of the organisation's devices, newest enrollment first.
pub async fn list_devices(
    store: &Store,
    who: &Principal,
    cursor: Option<&str>,
    limit: Option<usize>,
) -> AdminResult<Page<DeviceView>> {
    who.require(Capability::View)?;
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c, 2))
        .transpose()?;
    let after = match &after {
        Some(parts) => Some((
            parts[0]
                .parse::<i64>()
                .map_err(|_| AdminError::invalid("cursor", "not a cursor this API returned"))?,
            parts[1].as_str(),
        )),
        None => None,
    };
    let size = page_size(limit);
    let mut devices = store.page_devices(&who.org_id, after, size + 1).await?;
    let more = devices.len() > size;
    devices.truncate(size);
    let next_cursor = more
        .then(|| {
            devices
                .last()
                .map(|d| encode_cursor(&[&d.enrolled_at.to_string(), &d.id]))
        })
        .flatten();
    Ok(Page {
        items: devices.iter().map(DeviceView::from).collect(),
        next_cursor,
    })
}

/// One device.
pub async fn device(store: &Store, who: &Principal, device_id: &str) -> AdminResult<DeviceView> {
    who.require(Capability::View)?;
    let d = store
        .get_device(&who.org_id, device_id)
        .await?
        .ok_or(AdminError::NotFound("device"))?;
    Ok(DeviceView::from(&d))
}

/// Revokes one device; its agent wipes. Revoking a revoked device changes nothing.
pub async fn revoke_device(
    store: &Store,
    who: &Principal,
    device_id: &str,
    reason: Option<&str>,
) -> AdminResult<DeviceView> {
    who.require(Capability::ManageDevices)?;
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("revoked by an admin");
    if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            "reason",
            "at most 200 printable characters",
        ));
    }
    let d = store
        .revoke_device(&who.org_id, device_id, reason, &who.actor)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AdminError::NotFound("device"),
            other => other.into(),
        })?;
    Ok(DeviceView::from(&d))
}
