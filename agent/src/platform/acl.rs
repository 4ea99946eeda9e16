//! Windows access control for the agent's files, written and checked as SDDL strings.
//!
//! | what | DACL (protected: nothing inherited from `ProgramData`) |
//! |---|---|
//! | the state directory and the key tree's root | SYSTEM and Administrators: full control |
//! | `<state-dir>-keys\<developer SID>\` and its `api-key` | the same, plus read for the developer |
//!
//! Windows grants "bypass traverse checking" to everyone, so the developer reaches their own
//! directory without any right on the root, which they cannot list.
//!
//! Every DACL the agent sets is read back and refused if it still lets a broad group in
//! (Everyone, Users, Authenticated Users, Interactive, Guests, anonymous logons): an ACL that
//! silently did not apply must not leave the API key readable by every account.
//!
//! The SDDL handling is plain string work and tested on every platform; only [`sys`] (Windows)
//! calls the Win32 security API, and is the one module of the agent with `unsafe` code.

use std::io;
use std::path::Path;

/// SYSTEM and Administrators, full control, inherited by everything created inside.
const ADMIN_ACES: &str = "(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// The DACL of the state directory and of the key tree's root.
pub fn private_dir_sddl() -> String {
    format!("D:P{ADMIN_ACES}")
}

/// The DACL of the developer's key directory: read access for `developer_sid`, inherited by
/// the key file created in it.
pub fn developer_dir_sddl(developer_sid: &str) -> String {
    format!("D:P{ADMIN_ACES}(A;OICI;FR;;;{developer_sid})")
}

/// SIDs that stand for many accounts, by SDDL alias and by number.
const BROAD_SIDS: &[&str] = &[
    "WD",
    "S-1-1-0", // Everyone
    "BU",
    "S-1-5-32-545", // Users
    "AU",
    "S-1-5-11", // Authenticated Users
    "IU",
    "S-1-5-4", // Interactive
    "BG",
    "S-1-5-32-546", // Guests
    "AN",
    "S-1-5-7", // Anonymous logon
    "NU",
    "S-1-5-2", // Network
];

/// SIDs that are not a person: a key directory must not be handed to one of them.
const SERVICE_SIDS: &[&str] = &[
    "SY",
    "S-1-5-18", // LocalSystem
    "BA",
    "S-1-5-32-544", // Administrators
    "LS",
    "S-1-5-19", // LocalService
    "NS",
    "S-1-5-20", // NetworkService
    "S-1-3-0",  // Creator Owner
];

/// An access-allowed ACE of an SDDL DACL: its flags, rights and trustee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// ACE flags (`OICI`, `ID`, ...).
    pub flags: String,
    /// Rights (`FA`, `FR`, `0x1200a9`, ...).
    pub rights: String,
    /// Trustee SID or alias.
    pub sid: String,
}

/// The access-allowed entries of the `D:` part of `sddl`, in order.
pub fn allow_entries(sddl: &str) -> Vec<AllowEntry> {
    let Some(start) = sddl.find("D:") else {
        return Vec::new();
    };
    let dacl = &sddl[start + 2..];
    // The DACL ends where the SACL (`S:`) starts, outside any parenthesis.
    let mut out = Vec::new();
    let mut rest = dacl;
    while let Some(open) = rest.find('(') {
        if rest[..open].contains("S:") {
            break;
        }
        let Some(close) = rest[open..].find(')') else {
            break;
        };
        let fields: Vec<&str> = rest[open + 1..open + close].split(';').collect();
        if fields.len() >= 6 && matches!(fields[0], "A" | "OA") {
            out.push(AllowEntry {
                flags: fields[1].to_owned(),
                rights: fields[2].to_owned(),
                sid: fields[5].to_owned(),
            });
        }
        rest = &rest[open + close + 1..];
    }
    out
}

/// The trustees of `sddl`'s allow entries that stand for many accounts.
pub fn broad_grants(sddl: &str) -> Vec<String> {
    let mut out: Vec<String> = allow_entries(sddl)
        .into_iter()
        .filter(|e| BROAD_SIDS.iter().any(|b| b.eq_ignore_ascii_case(&e.sid)))
        .map(|e| e.sid)
        .collect();
    out.dedup();
    out
}

/// Whether `sid` is a person's account rather than SYSTEM, Administrators, a service or a
/// broad group.
pub fn is_personal_sid(sid: &str) -> bool {
    let upper = sid.to_ascii_uppercase();
    upper.starts_with("S-1-")
        && !SERVICE_SIDS.contains(&upper.as_str())
        && !BROAD_SIDS.contains(&upper.as_str())
        && upper
            .trim_start_matches("S-1-")
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// The owner SID of an SDDL string (`O:<sid>`), if present.
pub fn owner_of(sddl: &str) -> Option<String> {
    let start = sddl.find("O:")? + 2;
    let rest = &sddl[start..];
    // The owner runs to the next component (`G:`, `D:`, `S:`) or the end.
    let end = ["G:", "D:", "S:"]
        .iter()
        .filter_map(|c| rest.find(c))
        .min()
        .unwrap_or(rest.len());
    let owner = rest[..end].trim();
    (!owner.is_empty()).then(|| owner.to_owned())
}

/// Sets `sddl` as the protected DACL of `path`, then reads it back and fails if a broad group
/// still has access.
pub fn restrict(path: &Path, sddl: &str) -> io::Result<()> {
    sys::set_dacl(path, sddl)?;
    ensure_private(path)
}

/// [`restrict`] for the directory `dir` and each file directly in it: what a wider access list
/// let in while it was in place is shut out again (subdirectories have their own lists).
pub fn restrict_dir_and_files(dir: &Path, sddl: &str) -> io::Result<()> {
    restrict(dir, sddl)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            restrict(&entry.path(), sddl)?;
        }
    }
    Ok(())
}

/// [`restrict_dir_and_files`] only when `dir`'s DACL lets a broad group in: an unchanged
/// directory costs one read.
pub fn keep_private(dir: &Path, sddl: &str) -> io::Result<()> {
    if is_private(dir) {
        return Ok(());
    }
    restrict_dir_and_files(dir, sddl)
}

/// Fails if the DACL of `path` lets a broad group in.
pub fn ensure_private(path: &Path) -> io::Result<()> {
    let actual = sys::dacl_sddl(path)?;
    let broad = broad_grants(&actual);
    if broad.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "its access list still grants {} ({actual})",
                broad.join(", ")
            ),
        ))
    }
}

/// The DACL of `path` as SDDL.
pub fn dacl_sddl(path: &Path) -> io::Result<String> {
    sys::dacl_sddl(path)
}

/// Whether `path`'s DACL keeps broad groups out (an unreadable DACL counts as no).
pub fn is_private(path: &Path) -> bool {
    sys::dacl_sddl(path).is_ok_and(|sddl| broad_grants(&sddl).is_empty())
}

/// The owner SID of `path`.
pub fn owner_sid(path: &Path) -> io::Result<String> {
    let sddl = sys::owner_sddl(path)?;
    owner_of(&sddl)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no owner in {sddl}")))
}

#[cfg(windows)]
#[allow(unsafe_code)]
mod sys {
    //! The Win32 calls: SDDL in, SDDL out.

    use std::ffi::OsStr;
    use std::io;
    use std::os::windows::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr;

    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW,
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{
        GetFileSecurityW, SetFileSecurityW, DACL_SECURITY_INFORMATION, OBJECT_SECURITY_INFORMATION,
        OWNER_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    fn wide(s: &OsStr) -> Vec<u16> {
        s.encode_wide().chain(std::iter::once(0)).collect()
    }

    /// A security descriptor allocated by Windows, freed with `LocalFree`.
    struct LocalDescriptor(PSECURITY_DESCRIPTOR);

    impl Drop for LocalDescriptor {
        fn drop(&mut self) {
            // SAFETY: the pointer came from ConvertStringSecurityDescriptorToSecurityDescriptorW,
            // which documents LocalFree as its release, and is freed once.
            unsafe {
                LocalFree(self.0 as _);
            }
        }
    }

    pub fn set_dacl(path: &Path, sddl: &str) -> io::Result<()> {
        let sddl_w = wide(OsStr::new(sddl));
        let mut descriptor: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: sddl_w is NUL-terminated and outlives the call; descriptor is an out pointer.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl_w.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let descriptor = LocalDescriptor(descriptor);
        let path_w = wide(path.as_os_str());
        // SetFileSecurityW sets this object's DACL and nothing below it (what it contains is
        // handled by the caller); the PROTECTED flag cuts inheritance from the parent.
        // SAFETY: path_w is NUL-terminated; descriptor is valid until dropped at the end.
        let ok = unsafe {
            SetFileSecurityW(
                path_w.as_ptr(),
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                descriptor.0,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn sddl_of(path: &Path, what: OBJECT_SECURITY_INFORMATION) -> io::Result<String> {
        let path_w = wide(path.as_os_str());
        let mut needed = 0u32;
        // SAFETY: asks for the size only: a null buffer of length 0.
        unsafe { GetFileSecurityW(path_w.as_ptr(), what, ptr::null_mut(), 0, &mut needed) };
        if needed == 0 {
            return Err(io::Error::last_os_error());
        }
        // u64 elements keep the descriptor suitably aligned.
        let mut buffer = vec![0u64; (needed as usize).div_ceil(8)];
        // SAFETY: the buffer holds at least `needed` bytes and outlives the call.
        let ok = unsafe {
            GetFileSecurityW(
                path_w.as_ptr(),
                what,
                buffer.as_mut_ptr().cast(),
                needed,
                &mut needed,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        let mut text: *mut u16 = ptr::null_mut();
        let mut len = 0u32;
        // SAFETY: buffer holds the self-relative descriptor GetFileSecurityW wrote; text is an
        // out pointer, freed with LocalFree below.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                buffer.as_mut_ptr().cast(),
                SDDL_REVISION_1,
                what,
                &mut text,
                &mut len,
            )
        };
        if ok == 0 || text.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: text points to a NUL-terminated UTF-16 string allocated by Windows.
        let sddl = unsafe {
            let mut n = 0usize;
            while *text.add(n) != 0 {
                n += 1;
            }
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
            LocalFree(text as _);
            s
        };
        Ok(sddl)
    }

    pub fn dacl_sddl(path: &Path) -> io::Result<String> {
        sddl_of(path, DACL_SECURITY_INFORMATION)
    }

    pub fn owner_sddl(path: &Path) -> io::Result<String> {
        sddl_of(path, OWNER_SECURITY_INFORMATION)
    }
}

#[cfg(not(windows))]
mod sys {
    //! Windows ACLs do not exist here; Unix modes are set by the callers.

    use std::io;
    use std::path::Path;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "Windows access lists exist only on Windows",
        )
    }

    pub fn set_dacl(_path: &Path, _sddl: &str) -> io::Result<()> {
        Err(unsupported())
    }

    pub fn dacl_sddl(_path: &Path) -> io::Result<String> {
        Err(unsupported())
    }

    pub fn owner_sddl(_path: &Path) -> io::Result<String> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dacls_the_agent_sets_are_private() {
        assert_eq!(private_dir_sddl(), "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)");
        assert!(broad_grants(&private_dir_sddl()).is_empty());
        let dev = developer_dir_sddl("S-1-5-21-1-2-3-1001");
        assert!(broad_grants(&dev).is_empty());
        let entries = allow_entries(&dev);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[2],
            AllowEntry {
                flags: "OICI".into(),
                rights: "FR".into(),
                sid: "S-1-5-21-1-2-3-1001".into()
            }
        );
    }

    #[test]
    fn broad_groups_are_found_in_what_windows_reports() {
        // What ProgramData's inherited DACL looks like on a stock Windows 11.
        let program_data = "O:SYG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)\
                            (A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)";
        assert_eq!(broad_grants(program_data), vec!["BU".to_owned()]);
        assert_eq!(
            broad_grants("D:(A;;FA;;;S-1-1-0)(D;;FA;;;AU)"),
            vec!["S-1-1-0".to_owned()],
            "a deny entry grants nothing"
        );
        assert_eq!(
            broad_grants("D:PAI(A;OICI;FA;;;SY)S:(AU;SA;FA;;;WD)"),
            Vec::<String>::new(),
            "audit entries of the SACL are not grants"
        );
        assert!(broad_grants("O:BA").is_empty(), "no DACL");
        assert!(broad_grants("D:(A;;FA;;;WD").is_empty(), "truncated");
    }

    #[test]
    fn personal_sids_are_told_from_service_accounts() {
        assert!(is_personal_sid(
            "S-1-5-21-3623811015-3361044348-30300820-1013"
        ));
        assert!(is_personal_sid("S-1-12-1-1-2-3-4"), "an Entra ID account");
        for not_a_person in [
            "S-1-5-18",
            "s-1-5-32-544",
            "S-1-5-19",
            "S-1-1-0",
            "BA",
            "SY",
            "",
            "S-1-",
            "S-1-5-x",
            "S-1-5--1",
        ] {
            assert!(!is_personal_sid(not_a_person), "{not_a_person:?}");
        }
    }

    #[test]
    fn owners_are_read_from_sddl() {
        assert_eq!(
            owner_of("O:S-1-5-21-0-0-0-1000D:(A;;FA;;;SY)").as_deref(),
            Some("S-1-5-21-0-0-0-1000")
        );
        assert_eq!(owner_of("O:BAG:SY").as_deref(), Some("BA"));
        assert_eq!(owner_of("D:(A;;FA;;;SY)"), None);
        assert_eq!(owner_of("O:"), None);
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_the_win32_calls_say_unsupported() {
        let e = restrict(Path::new("."), &private_dir_sddl()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(!is_private(Path::new(".")));
        assert!(owner_sid(Path::new(".")).is_err());
    }
}
