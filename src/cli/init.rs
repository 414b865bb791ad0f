//! `disparo init`: a small project that passes `validate` and previews something useful.

use std::path::PathBuf;

use super::{CliResult, Ctx, Exit, output::say};
use disparo::diag::Problem;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the project (default: the current directory).
    pub dir: Option<PathBuf>,
}

const FILES: [(&str, &str); 7] = [
    (
        "disparo.yaml",
        "# Project defaults and channels. See the README for every channel type.\ntimezone: America/Sao_Paulo\nchannels:\n  # Writes each message as one JSON line to outbox.jsonl: safe to try.\n  outbox: { type: outbox, path: outbox.jsonl }\n  # Prints each message; `rate` is what the preview's forecast uses for channel time.\n  console: { type: console, rate: 20/s }\n",
    ),
    (
        "campaigns/welcome.yaml",
        "# One campaign. `disparo preview welcome` shows each message; `disparo plan welcome` stores them.\n# Every key is described in docs/campaign-reference.md of the disparo repository.\nchannel: console\ntemplate: welcome\naudience: audiences/customers.csv\nvars: { store: Loja Exemplo }\nschedule:\n  # No `at` and no `cron`: as soon as allowed on each recipient's clock.\n  timezone: America/Sao_Paulo\n  quiet_hours: { start: \"21:00\", end: \"08:00\" }\n  expire_after: 2d\n",
    ),
    (
        "templates/welcome.hbs",
        "Hi {{first_name}}, welcome to {{store}}! Reply STOP to opt out.\n",
    ),
    (
        "templates/welcome.pt-BR.hbs",
        "Olá {{first_name}}, boas-vindas à {{store}}! Responda SAIR para não receber mais.\n",
    ),
    (
        "templates/welcome.pt.hbs",
        "Olá {{first_name}}, bem-vindo/a à {{store}}! Responda SAIR para deixar de receber mensagens.\n",
    ),
    (
        "audiences/customers.csv",
        "id,first_name,phone,timezone,locale\nc1,Ana,+5511987650001,America/Sao_Paulo,pt-BR\nc2,João,+5592987650002,America/Manaus,pt-BR\nc3,Mary,+12125550103,America/New_York,en\nc4,Inês,+351912340004,Europe/Lisbon,pt-PT\nc5,Sam,+447700900005,,en\n",
    ),
    (
        ".gitignore",
        "disparo.db\ndisparo.db-wal\ndisparo.db-shm\noutbox.jsonl\n",
    ),
];

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let dir = ctx.cwd.join(args.dir.unwrap_or_else(|| PathBuf::from(".")));
    let existing: Vec<String> = FILES
        .iter()
        .filter(|(f, _)| dir.join(f).exists())
        .map(|(f, _)| f.to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Problem::new(format!(
            "{} already has {}",
            dir.display(),
            existing.join(", ")
        ))
        .hint("init never overwrites files; run it in an empty folder or remove them")
        .into());
    }
    for (name, content) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Problem::new(format!("cannot create the folder: {e}")).in_file(parent)
            })?;
        }
        std::fs::write(&path, content)
            .map_err(|e| Problem::new(format!("cannot write: {e}")).in_file(&path))?;
    }
    say(
        ctx.quiet,
        format!(
            "created a disparo project in {}\nnext: disparo validate && disparo preview welcome",
            dir.display()
        ),
    );
    Ok(Exit::Ok)
}
