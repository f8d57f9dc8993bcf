//! Giving memory back to the kernel after a burst of work: a process that
//! then idles for long (a container's monitor) keeps only what it uses.

use std::io;

/// Returns the free memory of the C heap to the kernel, including free
/// pages between live allocations (glibc's `malloc_trim`). A no-op with
/// other C libraries.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its lock; any pointer the program holds stays valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops the pages of the calling thread's stack below the caller's
/// frame, which the deepest calls so far touched and nothing will read
/// again before writing them: they come back zeroed if the stack grows
/// again. Returns the bytes released.
#[inline(never)]
pub fn release_unused_stack() -> io::Result<usize> {
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    let Some((lo, _)) = mapping_of(sp)? else {
        return Ok(0);
    };
    let page = rustix::param::page_size();
    // Two pages of room for the frames of the call below.
    let end = (sp & !(page - 1)).saturating_sub(2 * page);
    if end <= lo {
        return Ok(0);
    }
    // SAFETY: [lo, end) lies in the mapping that holds this frame (the
    // thread's stack; a guard page, if any, is a mapping of its own),
    // wholly below this frame and two more pages: only frames that have
    // returned used it, and no live value is stored below the stack
    // pointer (the x86-64 red zone is 128 bytes, within the margin).
    // MADV_DONTNEED replaces those pages with zeroed ones on the next
    // touch, which is what a fresh stack page is.
    let r = unsafe { libc::madvise(lo as *mut libc::c_void, end - lo, libc::MADV_DONTNEED) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(end - lo)
}

/// The bounds of the mapping of this process that holds `addr`.
fn mapping_of(addr: usize) -> io::Result<Option<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(maps
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .find(|(lo, hi)| (*lo..*hi).contains(&addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn deep(n: usize) -> u8 {
        let buf = std::hint::black_box([n as u8; 16 * 1024]);
        if n == 0 {
            buf[100]
        } else {
            deep(n - 1).wrapping_add(buf[5])
        }
    }

    /// Resident KiB of the mapping holding `addr`.
    fn resident_kb(addr: usize) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for l in smaps.lines() {
            if let Some((a, b)) = l.split_whitespace().next().and_then(|r| r.split_once('-')) {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = (a..b).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(v) = l.strip_prefix("Rss:") {
                    return v.trim().trim_end_matches("kB").trim().parse().unwrap();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    fn stack_pages_are_released_and_usable_again() {
        let t = std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(|| {
                let here = 0u8;
                let sp = std::ptr::addr_of!(here) as usize;
                let first = deep(32); // ~512 KiB of stack
                let before = resident_kb(sp);
                let released = release_unused_stack().unwrap();
                let after = resident_kb(sp);
                trim_heap();
                // The dropped pages work again, zeroed and refilled.
                (before, after, released, first == deep(32))
            })
            .unwrap();
        let (before, after, released, same) = t.join().unwrap();
        assert!(released >= 512 * 1024, "{released}");
        assert!(before - after >= 400, "{before} KiB -> {after} KiB");
        assert!(same);
    }
}
