//! Synthetic audience generator for benchmarks and load tests.
//!
//! ```text
//! cargo run --release --example gen_audience -- --rows 1000000 --seed 42 > audience.csv
//! cargo run --release --example gen_audience -- --rows 1000 --format jsonl > audience.jsonl
//! ```
//!
//! Output is deterministic for a given `--seed` (and a prefix of a longer run is identical to a
//! shorter run with the same seed), streamed to stdout through a `BufWriter`.
//!
//! Columns: `id,first_name,last_name,phone,email,timezone,locale,city,plan,points,signup_date`.
//! - `id`: `C` + zero-padded sequence number, unique.
//! - names: per-country pools with accents (João, Conceição, Müller, Núñez, Zoë, Ōtani...).
//! - `phone`: E.164, mobile ranges valid for the country and area code matching the city;
//!   unique in the file for ids below 5 000 000 (the subscriber part is a bijection of the id).
//! - `email`: lower-case ASCII derived from the names, unique (the id number is part of it).
//! - `timezone`: 61 IANA zones weighted like a Brazilian company's audience (≈42 % São Paulo);
//!   ≈2 % of rows have it empty (CSV) / missing (JSON Lines).
//! - `locale`: `pt-BR`, `pt-PT`, `en` or `es`, consistent with the country.
//! - `city` (one of them contains a comma, to exercise CSV quoting), `plan`, `points`,
//!   `signup_date` (ISO date): custom fields for templates.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

const USAGE: &str = "\
gen_audience: write a synthetic, deterministic audience to stdout

USAGE:
    cargo run --release --example gen_audience -- [OPTIONS] > audience.csv

OPTIONS:
    --rows N          number of recipients (default 1000)
    --seed S          RNG seed, same seed => same output (default 42)
    --format F        csv | jsonl (default csv)
    --start-id N      first id number (default 1)
    --zones N         only the N heaviest of the 61 zones, reweighted (default 61)
    -h, --help        print this help
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
}

struct Args {
    rows: u64,
    seed: u64,
    format: Format,
    start_id: u64,
    zones: usize,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        rows: 1000,
        seed: 42,
        format: Format::Csv,
        start_id: 1,
        zones: ZONES.len(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        if !matches!(
            flag.as_str(),
            "--rows" | "--seed" | "--format" | "--start-id" | "--zones"
        ) {
            return Err(format!("unknown argument `{arg}`"));
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| format!("`{flag}` needs a value"))?,
        };
        let number = |v: &str| -> Result<u64, String> {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("`{flag}` expects a non-negative integer, got `{v}`"))
        };
        match flag.as_str() {
            "--rows" => args.rows = number(&value)?,
            "--seed" => args.seed = number(&value)?,
            "--start-id" => args.start_id = number(&value)?,
            "--zones" => {
                let n = number(&value)?;
                if n == 0 || n > ZONES.len() as u64 {
                    return Err(format!("`--zones` must be 1 to {}, got {n}", ZONES.len()));
                }
                args.zones = n as usize;
            }
            _ => {
                args.format = match value.as_str() {
                    "csv" => Format::Csv,
                    "jsonl" | "ndjson" => Format::Jsonl,
                    other => return Err(format!("`--format` must be csv or jsonl, got `{other}`")),
                }
            }
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("gen_audience: error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 18, stdout.lock());
    match generate(&args, &mut out).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            // `| head`: the reader is gone; that is not a failure. Drop the rest quietly.
            std::mem::forget(out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_audience: error writing output: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data tables
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Culture {
    PtBr,
    PtPt,
    Es,
    En,
    De,
    In,
    Np,
    Jp,
    Ar,
}

struct Country {
    /// E.164 country calling code.
    cc: &'static str,
    /// Digits after the country code (area + lead + subscriber digits).
    nsn_len: usize,
    /// Valid leading digits after the area code (mobile ranges / exchanges); all the same length.
    leads: &'static [&'static str],
    culture: Culture,
    /// Share (per mille) of people with Spanish names and the `es` locale (US).
    es_share: u32,
    domains: &'static [&'static str],
}

/// `(city, area codes)`: the national prefix placed before the lead; empty for countries
/// whose mobile numbers carry no area code.
type City = (&'static str, &'static [&'static str]);

struct Zone {
    name: &'static str,
    country: &'static Country,
    /// Relative weight, out of ~10 000.
    weight: u32,
    cities: &'static [City],
}

const BR_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "yahoo.com.br",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    "icloud.com",
];
const PT_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "sapo.pt",
    "hotmail.com",
    "outlook.pt",
];
const ES_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "hotmail.com",
    "outlook.es",
    "yahoo.es",
];
const LATAM_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "yahoo.com",
];
const EN_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
];
const UK_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "btinternet.com",
    "yahoo.co.uk",
    "icloud.com",
];
const DE_DOMAINS: &[&str] = &["gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de"];
const IN_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "yahoo.co.in",
    "rediffmail.com",
    "outlook.com",
];
const JP_DOMAINS: &[&str] = &["gmail.com", "yahoo.co.jp", "docomo.ne.jp", "icloud.com"];
const AU_DOMAINS: &[&str] = &["gmail.com", "outlook.com", "bigpond.com", "icloud.com"];
const GEN_DOMAINS: &[&str] = &["gmail.com", "gmail.com", "outlook.com", "yahoo.com"];

/// North American exchanges (NXX): 200-999, without N11 service codes and 555.
static NANP_EXCHANGES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    (200..1000u32)
        .filter(|n| n % 100 != 11 && *n != 555)
        .map(|n| &*Box::leak(n.to_string().into_boxed_str()))
        .collect()
});

macro_rules! country {
    ($name:ident, $cc:expr, $nsn:expr, $leads:expr, $culture:expr, $es:expr, $domains:expr) => {
        static $name: Country = Country {
            cc: $cc,
            nsn_len: $nsn,
            leads: $leads,
            culture: $culture,
            es_share: $es,
            domains: $domains,
        };
    };
}

// Placeholder lead list for NANP; replaced by NANP_EXCHANGES at run time (see `leads_of`).
const NANP: &[&str] = &["NXX"];

country!(
    BR,
    "55",
    11,
    &["96", "97", "98", "99"],
    Culture::PtBr,
    0,
    BR_DOMAINS
);
country!(
    PT,
    "351",
    9,
    &["91", "92", "93", "96"],
    Culture::PtPt,
    0,
    PT_DOMAINS
);
country!(US, "1", 10, NANP, Culture::En, 120, EN_DOMAINS);
country!(CA, "1", 10, NANP, Culture::En, 0, EN_DOMAINS);
country!(
    GB,
    "44",
    10,
    &["71", "73", "74", "75", "77", "78", "79"],
    Culture::En,
    0,
    UK_DOMAINS
);
country!(
    ES,
    "34",
    9,
    &["60", "61", "62", "63", "64", "65", "66", "67", "68", "69"],
    Culture::Es,
    0,
    ES_DOMAINS
);
country!(
    DE,
    "49",
    11,
    &[
        "151", "152", "157", "160", "162", "163", "170", "171", "172", "173", "175", "176", "177",
        "178", "179"
    ],
    Culture::De,
    0,
    DE_DOMAINS
);
country!(
    IN,
    "91",
    10,
    &[
        "62", "63", "70", "73", "77", "80", "81", "85", "88", "90", "91", "93", "95", "96", "97",
        "98", "99"
    ],
    Culture::In,
    0,
    IN_DOMAINS
);
country!(
    NP,
    "977",
    10,
    &["980", "981", "982", "984", "985", "986"],
    Culture::Np,
    0,
    GEN_DOMAINS
);
country!(
    JP,
    "81",
    10,
    &["70", "80", "90"],
    Culture::Jp,
    0,
    JP_DOMAINS
);
country!(
    AU,
    "61",
    9,
    &["40", "41", "42", "43", "44", "45", "46", "47", "48", "49"],
    Culture::En,
    0,
    AU_DOMAINS
);
country!(
    MX,
    "52",
    10,
    &["2", "3", "4", "5", "6", "7", "8", "9"],
    Culture::Es,
    0,
    LATAM_DOMAINS
);
country!(
    CO,
    "57",
    10,
    &[
        "300", "301", "304", "310", "311", "312", "313", "315", "316", "317", "318", "320", "321",
        "350"
    ],
    Culture::Es,
    0,
    LATAM_DOMAINS
);
// Argentina mobiles from abroad: +54 9 <area> <number>; the 9 is part of the area prefix here.
country!(
    AR,
    "54",
    11,
    &["2", "3", "4", "5", "6"],
    Culture::Es,
    0,
    LATAM_DOMAINS
);
country!(CL, "56", 9, &["9"], Culture::Es, 0, LATAM_DOMAINS);
country!(PE, "51", 9, &["9"], Culture::Es, 0, LATAM_DOMAINS);
country!(
    ZA,
    "27",
    9,
    &[
        "60", "61", "62", "63", "64", "65", "66", "71", "72", "73", "74", "76", "78", "79", "81",
        "82", "83", "84"
    ],
    Culture::En,
    0,
    GEN_DOMAINS
);
country!(
    EG,
    "20",
    10,
    &["10", "11", "12", "15"],
    Culture::Ar,
    0,
    GEN_DOMAINS
);
country!(
    AE,
    "971",
    9,
    &["50", "52", "54", "55", "56", "58"],
    Culture::Ar,
    0,
    GEN_DOMAINS
);
country!(SG, "65", 8, &["8", "9"], Culture::En, 0, GEN_DOMAINS);
country!(
    NZ,
    "64",
    9,
    &["21", "22", "27"],
    Culture::En,
    0,
    GEN_DOMAINS
);

const NO_AREA: &[&str] = &[""];

static ZONES: &[Zone] = &[
    // Brazil (~55 %): area codes (DDD) match the city.
    Zone {
        name: "America/Sao_Paulo",
        country: &BR,
        weight: 4200,
        cities: &[
            ("São Paulo", &["11"]),
            ("São Paulo", &["11"]),
            ("São Paulo", &["11"]),
            ("Campinas", &["19"]),
            ("Santos", &["13"]),
            ("Ribeirão Preto", &["16"]),
            ("São José dos Campos", &["12"]),
            ("Rio de Janeiro", &["21"]),
            ("Rio de Janeiro", &["21"]),
            ("Niterói", &["21"]),
            ("Belo Horizonte", &["31"]),
            ("Uberlândia", &["34"]),
            ("Curitiba", &["41"]),
            ("Londrina", &["43"]),
            ("Florianópolis", &["48"]),
            ("Joinville", &["47"]),
            ("Porto Alegre", &["51"]),
            ("Caxias do Sul", &["54"]),
            ("Brasília", &["61"]),
            ("Goiânia", &["62"]),
            ("Vitória", &["27"]),
        ],
    },
    Zone {
        name: "America/Bahia",
        country: &BR,
        weight: 250,
        cities: &[
            ("Salvador", &["71"]),
            ("Feira de Santana", &["75"]),
            ("Vitória da Conquista", &["77"]),
        ],
    },
    Zone {
        name: "America/Recife",
        country: &BR,
        weight: 250,
        cities: &[
            ("Recife", &["81"]),
            ("João Pessoa", &["83"]),
            ("Natal", &["84"]),
            ("Campina Grande", &["83"]),
        ],
    },
    Zone {
        name: "America/Fortaleza",
        country: &BR,
        weight: 200,
        cities: &[
            ("Fortaleza", &["85"]),
            ("Teresina", &["86"]),
            ("São Luís", &["98"]),
        ],
    },
    Zone {
        name: "America/Belem",
        country: &BR,
        weight: 150,
        cities: &[
            ("Belém", &["91"]),
            ("Macapá", &["96"]),
            ("Santarém", &["93"]),
        ],
    },
    Zone {
        name: "America/Manaus",
        country: &BR,
        weight: 150,
        cities: &[("Manaus", &["92"])],
    },
    Zone {
        name: "America/Cuiaba",
        country: &BR,
        weight: 80,
        cities: &[("Cuiabá", &["65"])],
    },
    Zone {
        name: "America/Campo_Grande",
        country: &BR,
        weight: 70,
        cities: &[("Campo Grande", &["67"])],
    },
    Zone {
        name: "America/Maceio",
        country: &BR,
        weight: 60,
        cities: &[("Maceió", &["82"]), ("Aracaju", &["79"])],
    },
    Zone {
        name: "America/Araguaina",
        country: &BR,
        weight: 40,
        cities: &[("Palmas", &["63"])],
    },
    Zone {
        name: "America/Porto_Velho",
        country: &BR,
        weight: 40,
        cities: &[("Porto Velho", &["69"])],
    },
    Zone {
        name: "America/Boa_Vista",
        country: &BR,
        weight: 20,
        cities: &[("Boa Vista", &["95"])],
    },
    Zone {
        name: "America/Rio_Branco",
        country: &BR,
        weight: 25,
        cities: &[("Rio Branco", &["68"])],
    },
    Zone {
        name: "America/Noronha",
        country: &BR,
        weight: 3,
        cities: &[("Fernando de Noronha", &["81"])],
    },
    // Portugal
    Zone {
        name: "Europe/Lisbon",
        country: &PT,
        weight: 540,
        cities: &[
            ("Lisboa", NO_AREA),
            ("Lisboa", NO_AREA),
            ("Porto", NO_AREA),
            ("Braga", NO_AREA),
            ("Coimbra", NO_AREA),
            ("Faro", NO_AREA),
            ("Setúbal", NO_AREA),
            ("Aveiro", NO_AREA),
        ],
    },
    Zone {
        name: "Atlantic/Madeira",
        country: &PT,
        weight: 35,
        cities: &[("Funchal", NO_AREA)],
    },
    Zone {
        name: "Atlantic/Azores",
        country: &PT,
        weight: 25,
        cities: &[("Ponta Delgada", NO_AREA), ("Angra do Heroísmo", NO_AREA)],
    },
    // United States
    Zone {
        name: "America/New_York",
        country: &US,
        weight: 520,
        cities: &[
            ("New York", &["212", "646", "917", "718"]),
            ("Boston", &["617"]),
            ("Miami", &["305", "786"]),
            ("Atlanta", &["404", "678"]),
            ("Philadelphia", &["215"]),
            ("Washington, D.C.", &["202"]),
            ("Orlando", &["407"]),
        ],
    },
    Zone {
        name: "America/Chicago",
        country: &US,
        weight: 300,
        cities: &[
            ("Chicago", &["312", "773"]),
            ("Houston", &["713", "832"]),
            ("Dallas", &["214", "469"]),
            ("Minneapolis", &["612"]),
            ("San Antonio", &["210"]),
        ],
    },
    Zone {
        name: "America/Detroit",
        country: &US,
        weight: 40,
        cities: &[("Detroit", &["313"])],
    },
    Zone {
        name: "America/Indiana/Indianapolis",
        country: &US,
        weight: 20,
        cities: &[("Indianapolis", &["317"])],
    },
    Zone {
        name: "America/Denver",
        country: &US,
        weight: 80,
        cities: &[
            ("Denver", &["303", "720"]),
            ("Salt Lake City", &["801"]),
            ("Albuquerque", &["505"]),
        ],
    },
    Zone {
        name: "America/Phoenix",
        country: &US,
        weight: 60,
        cities: &[("Phoenix", &["602", "480"])],
    },
    Zone {
        name: "America/Los_Angeles",
        country: &US,
        weight: 300,
        cities: &[
            ("Los Angeles", &["213", "310", "323"]),
            ("San Francisco", &["415"]),
            ("San Diego", &["619"]),
            ("San José", &["408"]),
            ("Seattle", &["206"]),
            ("Las Vegas", &["702"]),
            ("Portland", &["503"]),
        ],
    },
    Zone {
        name: "America/Anchorage",
        country: &US,
        weight: 12,
        cities: &[("Anchorage", &["907"])],
    },
    Zone {
        name: "Pacific/Honolulu",
        country: &US,
        weight: 15,
        cities: &[("Honolulu", &["808"])],
    },
    // Canada
    Zone {
        name: "America/Toronto",
        country: &CA,
        weight: 90,
        cities: &[
            ("Toronto", &["416", "647"]),
            ("Ottawa", &["613"]),
            ("Montréal", &["514"]),
        ],
    },
    Zone {
        name: "America/Vancouver",
        country: &CA,
        weight: 40,
        cities: &[("Vancouver", &["604", "778"])],
    },
    Zone {
        name: "America/Edmonton",
        country: &CA,
        weight: 30,
        cities: &[("Edmonton", &["780"]), ("Calgary", &["403", "587"])],
    },
    Zone {
        name: "America/Winnipeg",
        country: &CA,
        weight: 12,
        cities: &[("Winnipeg", &["204"])],
    },
    Zone {
        name: "America/Halifax",
        country: &CA,
        weight: 10,
        cities: &[("Halifax", &["902"])],
    },
    Zone {
        name: "America/St_Johns",
        country: &CA,
        weight: 8,
        cities: &[("St. John's", &["709"])],
    },
    Zone {
        name: "America/Regina",
        country: &CA,
        weight: 5,
        cities: &[("Regina", &["306"])],
    },
    // Europe
    Zone {
        name: "Europe/London",
        country: &GB,
        weight: 250,
        cities: &[
            ("London", NO_AREA),
            ("Manchester", NO_AREA),
            ("Birmingham", NO_AREA),
            ("Edinburgh", NO_AREA),
        ],
    },
    Zone {
        name: "Europe/Madrid",
        country: &ES,
        weight: 230,
        cities: &[
            ("Madrid", NO_AREA),
            ("Barcelona", NO_AREA),
            ("Valencia", NO_AREA),
            ("Sevilla", NO_AREA),
            ("A Coruña", NO_AREA),
        ],
    },
    Zone {
        name: "Atlantic/Canary",
        country: &ES,
        weight: 20,
        cities: &[
            ("Las Palmas de Gran Canaria", NO_AREA),
            ("Santa Cruz de Tenerife", NO_AREA),
        ],
    },
    Zone {
        name: "Europe/Berlin",
        country: &DE,
        weight: 150,
        cities: &[
            ("Berlin", NO_AREA),
            ("München", NO_AREA),
            ("Hamburg", NO_AREA),
            ("Köln", NO_AREA),
            ("Düsseldorf", NO_AREA),
        ],
    },
    // Asia
    Zone {
        name: "Asia/Kolkata",
        country: &IN,
        weight: 300,
        cities: &[
            ("Mumbai", NO_AREA),
            ("Delhi", NO_AREA),
            ("Bengaluru", NO_AREA),
            ("Chennai", NO_AREA),
            ("Hyderabad", NO_AREA),
        ],
    },
    Zone {
        name: "Asia/Kathmandu",
        country: &NP,
        weight: 30,
        cities: &[("Kathmandu", NO_AREA), ("Pokhara", NO_AREA)],
    },
    Zone {
        name: "Asia/Tokyo",
        country: &JP,
        weight: 120,
        cities: &[
            ("Tokyo", NO_AREA),
            ("Osaka", NO_AREA),
            ("Yokohama", NO_AREA),
            ("Kyoto", NO_AREA),
        ],
    },
    Zone {
        name: "Asia/Dubai",
        country: &AE,
        weight: 40,
        cities: &[("Dubai", NO_AREA), ("Abu Dhabi", NO_AREA)],
    },
    Zone {
        name: "Asia/Singapore",
        country: &SG,
        weight: 40,
        cities: &[("Singapore", NO_AREA)],
    },
    // Oceania
    Zone {
        name: "Australia/Sydney",
        country: &AU,
        weight: 80,
        cities: &[("Sydney", NO_AREA), ("Newcastle", NO_AREA)],
    },
    Zone {
        name: "Australia/Melbourne",
        country: &AU,
        weight: 60,
        cities: &[("Melbourne", NO_AREA)],
    },
    Zone {
        name: "Australia/Brisbane",
        country: &AU,
        weight: 35,
        cities: &[("Brisbane", NO_AREA), ("Gold Coast", NO_AREA)],
    },
    Zone {
        name: "Australia/Perth",
        country: &AU,
        weight: 25,
        cities: &[("Perth", NO_AREA)],
    },
    Zone {
        name: "Australia/Adelaide",
        country: &AU,
        weight: 20,
        cities: &[("Adelaide", NO_AREA)],
    },
    Zone {
        name: "Australia/Darwin",
        country: &AU,
        weight: 5,
        cities: &[("Darwin", NO_AREA)],
    },
    Zone {
        name: "Australia/Hobart",
        country: &AU,
        weight: 5,
        cities: &[("Hobart", NO_AREA)],
    },
    Zone {
        name: "Australia/Lord_Howe",
        country: &AU,
        weight: 2,
        cities: &[("Lord Howe Island", NO_AREA)],
    },
    Zone {
        name: "Pacific/Auckland",
        country: &NZ,
        weight: 30,
        cities: &[("Auckland", NO_AREA), ("Wellington", NO_AREA)],
    },
    Zone {
        name: "Pacific/Chatham",
        country: &NZ,
        weight: 1,
        cities: &[("Waitangi", NO_AREA)],
    },
    // Latin America
    Zone {
        name: "America/Mexico_City",
        country: &MX,
        weight: 250,
        cities: &[
            ("Ciudad de México", &["55"]),
            ("Guadalajara", &["33"]),
            ("Puebla", &["222"]),
        ],
    },
    Zone {
        name: "America/Monterrey",
        country: &MX,
        weight: 50,
        cities: &[("Monterrey", &["81"])],
    },
    Zone {
        name: "America/Tijuana",
        country: &MX,
        weight: 40,
        cities: &[("Tijuana", &["664"])],
    },
    Zone {
        name: "America/Cancun",
        country: &MX,
        weight: 25,
        cities: &[("Cancún", &["998"])],
    },
    Zone {
        name: "America/Bogota",
        country: &CO,
        weight: 150,
        cities: &[
            ("Bogotá", NO_AREA),
            ("Medellín", NO_AREA),
            ("Cali", NO_AREA),
            ("Barranquilla", NO_AREA),
        ],
    },
    Zone {
        name: "America/Argentina/Buenos_Aires",
        country: &AR,
        weight: 150,
        cities: &[
            ("Buenos Aires", &["911"]),
            ("Buenos Aires", &["911"]),
            ("La Plata", &["9221"]),
            ("Mar del Plata", &["9223"]),
        ],
    },
    Zone {
        name: "America/Santiago",
        country: &CL,
        weight: 80,
        cities: &[
            ("Santiago", NO_AREA),
            ("Valparaíso", NO_AREA),
            ("Concepción", NO_AREA),
        ],
    },
    Zone {
        name: "America/Lima",
        country: &PE,
        weight: 60,
        cities: &[("Lima", NO_AREA), ("Arequipa", NO_AREA)],
    },
    // Africa
    Zone {
        name: "Africa/Johannesburg",
        country: &ZA,
        weight: 40,
        cities: &[
            ("Johannesburg", NO_AREA),
            ("Cape Town", NO_AREA),
            ("Durban", NO_AREA),
        ],
    },
    Zone {
        name: "Africa/Cairo",
        country: &EG,
        weight: 30,
        cities: &[("Cairo", NO_AREA), ("Alexandria", NO_AREA)],
    },
];

/// `(display, first names, last names)`; the ASCII forms for e-mails are derived once at start.
fn name_pools(c: Culture) -> (&'static [&'static str], &'static [&'static str]) {
    match c {
        Culture::PtBr => (
            &[
                "João",
                "José",
                "Maria",
                "Ana",
                "Conceição",
                "Luíza",
                "Gabriel",
                "Lucas",
                "Matheus",
                "Letícia",
                "Júlia",
                "Beatriz",
                "Vitória",
                "Antônio",
                "Sebastião",
                "Inês",
                "Márcia",
                "Cauã",
                "Thaís",
                "Francisco",
                "Carlos",
                "Paulo",
                "Pedro",
                "Luís",
                "Marcos",
                "Rafael",
                "Fernanda",
                "Patrícia",
                "Aline",
                "Camila",
                "Juliana",
                "Bruna",
                "Amanda",
                "Larissa",
                "Vinícius",
                "Gustavo",
                "Heitor",
                "Valentina",
                "Lívia",
                "Mônica",
                "Cláudia",
                "Sérgio",
                "Fábio",
                "Rogério",
                "Jéssica",
                "Débora",
                "Raíssa",
                "Enzo",
                "Helena",
                "Davi",
            ],
            &[
                "Silva",
                "Santos",
                "Oliveira",
                "Souza",
                "Rodrigues",
                "Ferreira",
                "Alves",
                "Pereira",
                "Lima",
                "Gomes",
                "Costa",
                "Ribeiro",
                "Martins",
                "Carvalho",
                "Araújo",
                "Gonçalves",
                "Conceição",
                "Simões",
                "Magalhães",
                "Falcão",
                "Brandão",
                "Assunção",
                "Peçanha",
                "Guimarães",
                "Müller",
                "Schmidt",
                "Rossi",
                "Nunes",
                "Barbosa",
                "Rocha",
                "Dias",
                "Monteiro",
                "Cardoso",
                "Teixeira",
                "da Silva",
                "dos Santos",
                "de Souza",
                "Nascimento",
                "Cavalcânti",
                "Sá",
                "Antunes",
                "Mendonça",
                "Nóbrega",
                "Tavares",
                "Yamamoto",
                "Nakamura",
            ],
        ),
        Culture::PtPt => (
            &[
                "João",
                "Gonçalo",
                "Inês",
                "Leonor",
                "Tomás",
                "Beatriz",
                "Simão",
                "Conceição",
                "Afonso",
                "Rodrigo",
                "Matilde",
                "Carolina",
                "Diogo",
                "Francisca",
                "Duarte",
                "Mariana",
                "Rui",
                "Sónia",
                "Vítor",
                "Lúcia",
                "Margarida",
                "Nuno",
                "Tiago",
                "Joana",
            ],
            &[
                "Silva",
                "Santos",
                "Ferreira",
                "Pereira",
                "Oliveira",
                "Costa",
                "Rodrigues",
                "Martins",
                "Jesus",
                "Sousa",
                "Fernandes",
                "Gonçalves",
                "Gomes",
                "Lopes",
                "Marques",
                "Magalhães",
                "Sá",
                "Nóbrega",
                "Simões",
                "Conceição",
                "Brandão",
                "Araújo",
                "Figueiredo",
                "Assunção",
            ],
        ),
        Culture::Es => (
            &[
                "José",
                "María",
                "Sofía",
                "Martín",
                "Ramón",
                "Inés",
                "Begoña",
                "Iñaki",
                "Ángel",
                "Lucía",
                "Mateo",
                "Valentina",
                "Camila",
                "Santiago",
                "Sebastián",
                "Ximena",
                "Andrés",
                "Jesús",
                "Alejandro",
                "Guadalupe",
                "Héctor",
                "Nicolás",
                "Julián",
                "Daniela",
                "Tomás",
                "Renata",
                "Joaquín",
                "Agustín",
            ],
            &[
                "García",
                "Rodríguez",
                "González",
                "Fernández",
                "López",
                "Martínez",
                "Sánchez",
                "Pérez",
                "Gómez",
                "Núñez",
                "Nuñez",
                "Ibáñez",
                "Muñoz",
                "Peña",
                "Díaz",
                "Hernández",
                "Jiménez",
                "Álvarez",
                "Ruiz",
                "Ramírez",
                "Flores",
                "Torres",
                "Vásquez",
                "Castañeda",
                "Rojas",
                "Morales",
                "Ortiz",
                "Gutiérrez",
                "Valdés",
            ],
        ),
        Culture::En => (
            &[
                "James",
                "Mary",
                "John",
                "Patricia",
                "Robert",
                "Jennifer",
                "Michael",
                "Linda",
                "William",
                "Elizabeth",
                "David",
                "Zoë",
                "Chloé",
                "Renée",
                "Noël",
                "Olivia",
                "Emma",
                "Liam",
                "Noah",
                "Ava",
                "Sophia",
                "Isabella",
                "Ethan",
                "Mason",
                "Harper",
                "Amelia",
                "Jack",
                "Charlotte",
                "Oliver",
                "Siobhán",
                "Seán",
                "Aoife",
            ],
            &[
                "Smith",
                "Johnson",
                "Williams",
                "Brown",
                "Jones",
                "Miller",
                "Davis",
                "Wilson",
                "Anderson",
                "Taylor",
                "Thomas",
                "Moore",
                "Martin",
                "Jackson",
                "White",
                "Harris",
                "Clark",
                "Lewis",
                "O'Brien",
                "O'Connor",
                "McDonald",
                "Smith-Jones",
                "Nguyen",
                "Kim",
                "Patel",
                "Wright",
                "Walker",
                "Young",
                "King",
                "Scott",
                "Brontë",
            ],
        ),
        Culture::De => (
            &[
                "Jürgen",
                "Björn",
                "Lukas",
                "Leon",
                "Anna",
                "Lena",
                "Sören",
                "Jörg",
                "Günter",
                "Mia",
                "Emilia",
                "Hannah",
                "Maximilian",
                "Felix",
                "Käthe",
                "Uwe",
                "Stefan",
                "Sabine",
                "Claudia",
                "Jonas",
            ],
            &[
                "Müller",
                "Schmidt",
                "Schneider",
                "Fischer",
                "Weber",
                "Meyer",
                "Wagner",
                "Becker",
                "Schulz",
                "Hoffmann",
                "Schröder",
                "Weiß",
                "Großmann",
                "Köhler",
                "Krüger",
                "Böhm",
                "Wolf",
                "Neumann",
            ],
        ),
        Culture::In => (
            &[
                "Aarav", "Vivaan", "Aditya", "Priya", "Ananya", "Diya", "Rohan", "Arjun", "Kavya",
                "Ishaan", "Saanvi", "Rahul", "Pooja", "Sneha", "Vikram", "Lakshmi", "Sai", "Neha",
            ],
            &[
                "Sharma",
                "Patel",
                "Singh",
                "Kumar",
                "Gupta",
                "Reddy",
                "Iyer",
                "Nair",
                "Rao",
                "Das",
                "Mehta",
                "Joshi",
                "Chatterjee",
                "Banerjee",
                "Menon",
                "Pillai",
            ],
        ),
        Culture::Np => (
            &[
                "Aarav", "Sita", "Ram", "Anjali", "Bikash", "Sunita", "Prakash", "Srijana",
                "Suman", "Pema",
            ],
            &[
                "Shrestha", "Gurung", "Thapa", "Tamang", "Rai", "Magar", "Sherpa", "Adhikari",
                "Karki", "Poudel",
            ],
        ),
        Culture::Jp => (
            &[
                "Haruto", "Yui", "Sōta", "Yūki", "Hina", "Ren", "Aoi", "Sakura", "Kenji", "Yūto",
                "Mei", "Riku",
            ],
            &[
                "Satō",
                "Suzuki",
                "Takahashi",
                "Tanaka",
                "Watanabe",
                "Itō",
                "Yamamoto",
                "Nakamura",
                "Kobayashi",
                "Katō",
                "Ōtani",
                "Ōno",
                "Saitō",
            ],
        ),
        Culture::Ar => (
            &[
                "Mohamed", "Ahmed", "Fatma", "Youssef", "Omar", "Mariam", "Nour", "Layla", "Karim",
                "Hana", "Khaled", "Salma", "Zeynep", "Amira",
            ],
            &[
                "Hassan",
                "El-Sayed",
                "Ibrahim",
                "Mahmoud",
                "Abdullah",
                "Al-Mansouri",
                "Khalil",
                "Haddad",
                "Mansour",
                "Farouk",
                "Nasser",
                "Saleh",
            ],
        ),
    }
}

const PLANS: &[(&str, u32)] = &[("free", 50), ("basic", 25), ("pro", 18), ("business", 7)];

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

struct Name {
    display: &'static str,
    ascii: String,
}

struct Pool {
    first: Vec<Name>,
    last: Vec<Name>,
}

fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        let mapped: &str =
            match ch {
                'a'..='z' | '0'..='9' => {
                    out.push(ch);
                    continue;
                }
                'A'..='Z' => {
                    out.push(ch.to_ascii_lowercase());
                    continue;
                }
                'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å'
                | 'Ā' => "a",
                'ç' | 'Ç' => "c",
                'è' | 'é' | 'ê' | 'ë' | 'ē' | 'È' | 'É' | 'Ê' | 'Ë' | 'Ē' => "e",
                'ì' | 'í' | 'î' | 'ï' | 'ī' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "i",
                'ñ' | 'Ñ' => "n",
                'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø'
                | 'Ō' => "o",
                'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' => "u",
                'ý' | 'ÿ' | 'Ý' => "y",
                'ß' => "ss",
                _ => "", // spaces, apostrophes, hyphens and anything else are dropped
            };
        out.push_str(mapped);
    }
    out
}

fn pool(c: Culture) -> Pool {
    let (first, last) = name_pools(c);
    let mk = |v: &[&'static str]| {
        v.iter()
            .map(|&display| Name {
                display,
                ascii: ascii_fold(display),
            })
            .collect()
    };
    Pool {
        first: mk(first),
        last: mk(last),
    }
}

const CULTURES: [Culture; 9] = [
    Culture::PtBr,
    Culture::PtPt,
    Culture::Es,
    Culture::En,
    Culture::De,
    Culture::In,
    Culture::Np,
    Culture::Jp,
    Culture::Ar,
];

fn locale_of(c: Culture) -> &'static str {
    match c {
        Culture::PtBr => "pt-BR",
        Culture::PtPt => "pt-PT",
        Culture::Es => "es",
        _ => "en",
    }
}

/// Odd prime multiplier: `(id * A + B) mod M` is a bijection on `0..M` for every `M` built from
/// small factors, which keeps phone numbers unique per area code while looking random.
const PERM_A: u64 = 2_654_435_761;

struct Generator {
    rng: fastrand::Rng,
    zone_table: Vec<u8>,
    pools: Vec<Pool>,
    perm_b: u64,
    nanp: Vec<&'static str>,
}

struct Row<'a> {
    id: u64,
    first: &'a Name,
    last: &'a Name,
    phone: &'a str,
    email: &'a str,
    timezone: &'static str,
    locale: &'static str,
    city: &'static str,
    plan: &'static str,
    points: u32,
    signup: (i32, u32, u32),
}

impl Generator {
    /// `zones`: how many zones to draw from, the heaviest first.
    fn new(seed: u64, zones: usize) -> Self {
        let mut by_weight: Vec<usize> = (0..ZONES.len()).collect();
        by_weight.sort_by_key(|&i| std::cmp::Reverse(ZONES[i].weight));
        by_weight.truncate(zones);
        by_weight.sort_unstable();
        let total: u32 = by_weight.iter().map(|&i| ZONES[i].weight).sum();
        let mut zone_table = Vec::with_capacity(total as usize);
        for (i, z) in by_weight.iter().map(|&i| (i, &ZONES[i])) {
            zone_table.extend(std::iter::repeat_n(i as u8, z.weight as usize));
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let perm_b = rng.u64(..);
        Generator {
            rng,
            zone_table,
            pools: CULTURES.iter().map(|&c| pool(c)).collect(),
            perm_b,
            nanp: NANP_EXCHANGES.clone(),
        }
    }

    /// Generates one row and hands it to `emit`; the scratch strings are reused across rows.
    fn row<F>(&mut self, id: u64, phone: &mut String, email: &mut String, emit: F) -> io::Result<()>
    where
        F: FnOnce(&Row<'_>) -> io::Result<()>,
    {
        let rng = &mut self.rng;
        let zone = &ZONES[self.zone_table[rng.usize(..self.zone_table.len())] as usize];
        let country = zone.country;
        let (city, areas) = zone.cities[rng.usize(..zone.cities.len())];
        let area = areas[rng.usize(..areas.len())];

        let mut culture = country.culture;
        if country.es_share > 0 && rng.u32(..1000) < country.es_share {
            culture = Culture::Es;
        }
        let locale = locale_of(culture);
        let p = &self.pools[CULTURES.iter().position(|&x| x == culture).unwrap_or(0)];
        let first = &p.first[rng.usize(..p.first.len())];
        let last = &p.last[rng.usize(..p.last.len())];

        // Phone: +CC AREA LEAD SUBSCRIBER, with LEAD and SUBSCRIBER a bijection of the id.
        let leads: &[&str] = if country.leads == NANP {
            &self.nanp
        } else {
            country.leads
        };
        let lead_len = leads[0].len();
        let tail = country.nsn_len - area.len() - lead_len;
        let pow = 10u64.pow(tail as u32);
        let m = leads.len() as u64 * pow;
        let x = (id.wrapping_mul(PERM_A) % m + self.perm_b % m) % m;
        phone.clear();
        phone.push('+');
        phone.push_str(country.cc);
        phone.push_str(area);
        phone.push_str(leads[(x / pow) as usize]);
        push_padded(phone, x % pow, tail);

        // E-mail: unique through the id number; name part is letters, dots and underscores only.
        email.clear();
        match rng.u8(..4) {
            0 => {
                email.push_str(&first.ascii);
                email.push('.');
                email.push_str(&last.ascii);
            }
            1 => {
                email.push_str(&first.ascii);
                email.push_str(&last.ascii);
            }
            2 => {
                email.push_str(&first.ascii[..1]);
                email.push_str(&last.ascii);
            }
            _ => {
                email.push_str(&first.ascii);
                email.push('_');
                email.push_str(&last.ascii);
            }
        }
        push_padded(email, id, 1);
        email.push('@');
        email.push_str(country.domains[rng.usize(..country.domains.len())]);

        let timezone = if rng.u8(..100) < 2 { "" } else { zone.name };

        let mut r = rng.u32(..100);
        let mut plan = PLANS[0].0;
        for &(name, w) in PLANS {
            if r < w {
                plan = name;
                break;
            }
            r -= w;
        }
        let f = rng.f64();
        let points = match plan {
            "free" => (f * f * 2_000.0) as u32,
            "basic" => (f * f * 10_000.0) as u32,
            _ => (f * f * f * 100_000.0) as u32,
        };
        // Signup between 2015-01-01 and 2026-06-30.
        let signup = civil_from_days(days_from_civil(2015, 1, 1) + rng.i64(0..4198));

        emit(&Row {
            id,
            first,
            last,
            phone,
            email,
            timezone,
            locale,
            city,
            plan,
            points,
            signup,
        })
    }
}

fn push_padded(s: &mut String, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Only ASCII digits were written.
    s.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// Days since 1970-01-01 (proleptic Gregorian), Howard Hinnant's algorithm.
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

fn write_csv_field(out: &mut impl Write, s: &str) -> io::Result<()> {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.write_all(b"\"")?;
        out.write_all(s.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(s.as_bytes())
    }
}

fn write_json_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        match esc {
            Some(e) => out.write_all(e)?,
            None => write!(out, "\\u{:04x}", b)?,
        }
        start = i + 1;
    }
    out.write_all(&bytes[start..])?;
    out.write_all(b"\"")
}

fn generate(args: &Args, out: &mut impl Write) -> io::Result<()> {
    let mut g = Generator::new(args.seed, args.zones);
    // Ids are zero-padded to one width, so that they stay sorted past 9,999,999 rows too
    // (audiences exported sorted by id are the common case `plan` is fastest on).
    let last_id = args.start_id.saturating_add(args.rows).saturating_sub(1);
    let id_width = last_id.to_string().len().max(7);
    let mut phone = String::with_capacity(24);
    let mut email = String::with_capacity(64);
    let mut id_buf = String::with_capacity(16);
    let mut num = String::with_capacity(16);
    if args.format == Format::Csv {
        out.write_all(
            b"id,first_name,last_name,phone,email,timezone,locale,city,plan,points,signup_date\n",
        )?;
    }
    for id in args.start_id..args.start_id.saturating_add(args.rows) {
        g.row(id, &mut phone, &mut email, |r| {
            id_buf.clear();
            id_buf.push('C');
            push_padded(&mut id_buf, r.id, id_width);
            num.clear();
            push_padded(&mut num, r.points as u64, 1);
            let (y, m, d) = r.signup;
            let date = [
                b'0' + (y / 1000 % 10) as u8,
                b'0' + (y / 100 % 10) as u8,
                b'0' + (y / 10 % 10) as u8,
                b'0' + (y % 10) as u8,
                b'-',
                b'0' + (m / 10) as u8,
                b'0' + (m % 10) as u8,
                b'-',
                b'0' + (d / 10) as u8,
                b'0' + (d % 10) as u8,
            ];
            match args.format {
                Format::Csv => {
                    out.write_all(id_buf.as_bytes())?;
                    for field in [
                        r.first.display,
                        r.last.display,
                        r.phone,
                        r.email,
                        r.timezone,
                        r.locale,
                        r.city,
                        r.plan,
                    ] {
                        out.write_all(b",")?;
                        write_csv_field(out, field)?;
                    }
                    out.write_all(b",")?;
                    out.write_all(num.as_bytes())?;
                    out.write_all(b",")?;
                    out.write_all(&date)?;
                    out.write_all(b"\n")
                }
                Format::Jsonl => {
                    out.write_all(b"{\"id\":\"")?;
                    out.write_all(id_buf.as_bytes())?;
                    out.write_all(b"\"")?;
                    let fields = [
                        ("first_name", r.first.display),
                        ("last_name", r.last.display),
                        ("phone", r.phone),
                        ("email", r.email),
                        ("timezone", r.timezone),
                        ("locale", r.locale),
                        ("city", r.city),
                        ("plan", r.plan),
                    ];
                    for (k, v) in fields {
                        if v.is_empty() {
                            continue; // a missing timezone is an absent key
                        }
                        out.write_all(b",\"")?;
                        out.write_all(k.as_bytes())?;
                        out.write_all(b"\":")?;
                        write_json_str(out, v)?;
                    }
                    out.write_all(b",\"points\":")?;
                    out.write_all(num.as_bytes())?;
                    out.write_all(b",\"signup_date\":\"")?;
                    out.write_all(&date)?;
                    out.write_all(b"\"}\n")
                }
            }
        })?;
    }
    Ok(())
}
