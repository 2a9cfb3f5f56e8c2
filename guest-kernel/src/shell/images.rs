//! The kernel images `create` can build from: dom0's ramdisk, known as
//! `ramdisk`, and the ones `hvctl` uploaded over the control port, by the
//! names they were uploaded under (uploading a name again replaces it).

use alloc::string::String;
use alloc::vec::Vec;
use toolstack::command::DEFAULT_KERNEL;

/// Every image, by name.
pub struct Images {
    ramdisk: &'static [u8],
    uploaded: Vec<(String, Vec<u8>)>,
}

impl Images {
    /// Just the ramdisk.
    pub fn new(ramdisk: &'static [u8]) -> Images {
        Images { ramdisk, uploaded: Vec::new() }
    }

    /// The image called `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        if name == DEFAULT_KERNEL {
            return Some(self.ramdisk);
        }
        self.uploaded.iter().find(|(n, _)| n == name).map(|(_, image)| image.as_slice())
    }

    /// Keeps `image` as `name`, replacing an image of that name.
    pub fn add(&mut self, name: String, image: Vec<u8>) {
        self.uploaded.retain(|(n, _)| *n != name);
        self.uploaded.push((name, image));
    }

    /// `(name, bytes)` of each image, the ramdisk first.
    pub fn list(&self) -> impl Iterator<Item = (&str, usize)> {
        core::iter::once((DEFAULT_KERNEL, self.ramdisk.len()))
            .chain(self.uploaded.iter().map(|(n, image)| (n.as_str(), image.len())))
    }
}
