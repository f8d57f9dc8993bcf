//! docker's `run`/`create` flags that berth does not do yet. They are
//! accepted by the parser only to be refused by name: a flag silently
//! ignored would run a container other than the one asked for.

use clap::Args;

macro_rules! unsupported_flags {
    (
        switches { $( $sw:ident : $swlong:literal $(, short = $swshort:literal)? ; )* }
        values { $( $field:ident : $long:literal $(, short = $short:literal)? ; )* }
    ) => {
        #[derive(Args, Debug, Default)]
        pub struct Unsupported {
            $(
                #[arg(long = $swlong, $(short = $swshort,)? hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
                $sw: Option<String>,
            )*
            $(
                #[arg(long = $long, $(short = $short,)? hide = true, action = clap::ArgAction::Append)]
                $field: Vec<String>,
            )*
        }

        impl Unsupported {
            /// The first flag given, as the user would write it.
            pub fn first(&self) -> Option<String> {
                $(
                    if self.$sw.is_some() {
                        return Some(format!("--{}", $swlong));
                    }
                )*
                $(
                    if !self.$field.is_empty() {
                        return Some(format!("--{}", $long));
                    }
                )*
                None
            }
        }
    };
}

unsupported_flags! {
    switches {
    }
    values {
        gpus: "gpus";
        runtime: "runtime";
        isolation: "isolation";
        storage_opt: "storage-opt";
        volume_driver: "volume-driver";
        blkio_weight: "blkio-weight";
        blkio_weight_device: "blkio-weight-device";
        link_local_ip: "link-local-ip";
        cpu_rt_period: "cpu-rt-period";
        cpu_rt_runtime: "cpu-rt-runtime";
        kernel_memory: "kernel-memory";
    }
}
