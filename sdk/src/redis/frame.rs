//! The command frame: a pipeline's commands as one `list<u8>`, which crosses the component
//! boundary as a single copy (`redis.connection.send-encoded`). A sink's batch is a
//! thousand commands of a few arguments each; passed as `list<list<list<u8>>>`, every
//! argument would be allocated and copied on its own on each side of the boundary.
//!
//! The format is specified in `wit/plugin/BATCH-FORMAT.md` ("The command frame"): per
//! command its number of arguments, name included, then each argument as its length and
//! its bytes; both numbers are `u32` little-endian.

/// Starts a command of no arguments yet at the end of `frame`; returns where its count is.
pub(crate) fn start_command(frame: &mut Vec<u8>) -> usize {
    let at = frame.len();
    frame.extend_from_slice(&0u32.to_le_bytes());
    at
}

/// Appends an argument to the command whose count is at `count_at`, the last in `frame`.
pub(crate) fn push_arg(frame: &mut Vec<u8>, count_at: usize, arg: &[u8]) {
    // An argument of 4 GiB or more cannot be sent; its length is cut off and the host
    // refuses the frame.
    let len = u32::try_from(arg.len()).unwrap_or(u32::MAX);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(arg);
    if let Some(count) = frame.get_mut(count_at..count_at + 4) {
        let n = u32::from_le_bytes([count[0], count[1], count[2], count[3]]);
        count.copy_from_slice(&n.saturating_add(1).to_le_bytes());
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The arguments of one command, name first, borrowed from its frame.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    left: u32,
    rest: &'a [u8],
}

impl<'a> Args<'a> {
    /// The command starting at `bytes`, checked to its last argument; what follows it.
    fn read(bytes: &'a [u8]) -> Option<(Args<'a>, &'a [u8])> {
        let count = u32_at(bytes, 0)?;
        let mut at = 4usize;
        for _ in 0..count {
            let len = usize::try_from(u32_at(bytes, at)?).ok()?;
            at = at.checked_add(4)?.checked_add(len)?;
        }
        let (command, next) = (bytes.get(4..at)?, bytes.get(at..)?);
        Some((
            Args {
                left: count,
                rest: command,
            },
            next,
        ))
    }

    /// The arguments of a command frame of one command, as `Cmd` holds it.
    pub(crate) fn of_command(frame: &'a [u8]) -> Args<'a> {
        Args::read(frame).map_or(Args { left: 0, rest: &[] }, |(args, _)| args)
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let len = usize::try_from(u32_at(self.rest, 0)?).ok()?;
        let arg = self.rest.get(4..4 + len)?;
        self.rest = &self.rest[4 + len..];
        self.left -= 1;
        Some(arg)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// The commands of a frame, in order. A command whose arguments run past the end of the
/// frame, or one without a name, is an error naming the byte where it starts, and ends
/// the iteration.
pub fn decode(frame: &[u8]) -> Commands<'_> {
    Commands { frame, at: 0 }
}

/// See [`decode`].
#[derive(Debug, Clone)]
pub struct Commands<'a> {
    frame: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Commands<'a> {
    type Item = Result<Args<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.frame.get(self.at..).filter(|r| !r.is_empty())?;
        let start = self.at;
        let Some((args, next)) = Args::read(rest) else {
            self.at = self.frame.len();
            return Some(Err(format!(
                "the command at byte {start} of the frame is cut off"
            )));
        };
        if args.left == 0 {
            self.at = self.frame.len();
            return Some(Err(format!(
                "the command at byte {start} of the frame has no name"
            )));
        }
        self.at = self.frame.len() - next.len();
        Some(Ok(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(commands: &[&[&str]]) -> Vec<u8> {
        let mut frame = Vec::new();
        for args in commands {
            let at = start_command(&mut frame);
            for a in *args {
                push_arg(&mut frame, at, a.as_bytes());
            }
        }
        frame
    }

    fn texts(args: Args<'_>) -> Vec<String> {
        args.map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn commands_round_trip_borrowing_from_the_frame() {
        let frame = frame_of(&[&["SET", "k", ""], &["PING"], &["HSET", "h", "f", "grüße"]]);
        let commands: Vec<Vec<String>> = decode(&frame)
            .map(|c| texts(c.expect("well formed")))
            .collect();
        assert_eq!(
            commands,
            [
                vec!["SET", "k", ""],
                vec!["PING"],
                vec!["HSET", "h", "f", "grüße"]
            ]
        );
        assert_eq!(decode(&[]).count(), 0, "an empty frame has no commands");
    }

    #[test]
    fn malformed_frames_are_one_error_naming_the_byte() {
        // SET k v: a count and three arguments, 21 bytes; GET k follows.
        let frame = frame_of(&[&["SET", "k", "v"], &["GET", "k"]]);
        let cut: Vec<_> = decode(&frame[..frame.len() - 1]).collect();
        assert_eq!(cut.len(), 2);
        assert!(cut[0].is_ok());
        assert_eq!(
            cut[1].as_ref().map(|_| ()),
            Err(&"the command at byte 21 of the frame is cut off".to_owned())
        );
        let unnamed: Vec<_> = decode(&[0, 0, 0, 0, 1, 0, 0, 0]).collect();
        assert_eq!(unnamed.len(), 1, "nothing is read after an error");
        assert_eq!(
            unnamed[0].as_ref().map(|_| ()),
            Err(&"the command at byte 0 of the frame has no name".to_owned())
        );
        // Lengths past the end, including one that overflows, and a count cut off.
        for bad in [&[1, 0, 0, 0, 255, 255, 255, 255, 1][..], &[2, 0]] {
            let first = decode(bad).next();
            assert!(matches!(first, Some(Err(_))), "{first:?}");
        }
    }
}
