//! The `defai` command line: [`defai::cli::main`].

fn main() -> anyhow::Result<()> {
    defai::cli::main()
}
