//! Crate-internal macros: compile-time layout assertions and `TryFrom` enums.

/// Asserts at compile time a struct's size, alignment and every field's
/// offset: `assert_layout!(T, size = N, align = A, { field @ OFF, ... });`.
macro_rules! assert_layout {
    ($t:ty, size = $size:expr, align = $align:expr, { $($field:ident @ $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(core::mem::size_of::<$t>() == $size);
            assert!(core::mem::align_of::<$t>() == $align);
            $( assert!(core::mem::offset_of!($t, $field) == $off); )*
        };
    };
}

/// Defines a Rust enum for a set of ABI numbers, with `TryFrom<$repr>` and
/// `From<Enum> for $repr`. The numbers stay plain constants in ABI structs;
/// the enum is for the edge where a handler decodes them.
macro_rules! abi_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:path ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value ),*
        }

        impl $name {
            /// Every variant, in ABI order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::UnknownValue;
            fn try_from(value: $repr) -> Result<Self, Self::Error> {
                match value {
                    $( $value => Ok($name::$variant), )*
                    other => Err($crate::UnknownValue(other as u64)),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> $repr {
                value as $repr
            }
        }
    };
}
