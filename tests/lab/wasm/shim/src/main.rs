// Test-only containerd shim (io.containerd.edgefleet-wasmtime.v1): containerd-shim-wasm does the container
// lifecycle; this runs the container's WASI preview 1 module on wasmtime, with the container's arguments and
// stdio, and returns the module's exit code.
use anyhow::{Context, Result};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::shim::{Cli, Shim, Version, version};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p2::WasiCtxBuilder;
use wasmtime_wasi::preview1::{self, WasiP1Ctx};

struct EdgefleetShim;

#[derive(Default)]
struct WasmtimeSandbox;

impl Shim for EdgefleetShim {
    type Sandbox = WasmtimeSandbox;

    fn name() -> &'static str {
        "edgefleet-wasmtime"
    }

    fn version() -> Version {
        version!()
    }
}

impl Sandbox for WasmtimeSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let entrypoint = ctx.entrypoint();
        let bytes = entrypoint.source.as_bytes().context("reading the container's WASM module")?;
        let mut config = Config::new();
        config.async_support(true);
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, &bytes).context("compiling the WASM module")?;
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        preview1::add_to_linker_async(&mut linker, |wasi| wasi)?;
        let wasi = WasiCtxBuilder::new().inherit_stdio().args(ctx.args()).build_p1();
        let mut store = Store::new(&engine, wasi);
        let instance = linker.instantiate_async(&mut store, &module).await?;
        let func = instance
            .get_typed_func::<(), ()>(&mut store, entrypoint.func.as_str())
            .with_context(|| format!("the module exports no function {:?}", entrypoint.func))?;
        match func.call_async(&mut store, ()).await {
            Ok(()) => Ok(0),
            // proc_exit(n) ends the module with an I32Exit "error": that is its exit code, not a failure.
            Err(err) => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(err),
            },
        }
    }
}

fn main() {
    EdgefleetShim::run(None);
}
