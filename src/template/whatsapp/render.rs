//! Rendering one value of the block for one recipient and checking it against Meta's limits:
//! a violation is that recipient's [`RenderFailure`] naming the field and what to do.

use std::path::Path;

use super::{Part, RenderFailure, Slot};
use crate::message::{WaCurrency, WaDateTime, WaLocation, WaMedia, WaParam};

/// Meta's limits on template parameters (Cloud API template and component references).
pub mod limit {
    /// A header text (and so its one parameter), in characters.
    pub const HEADER_TEXT: usize = 60;
    /// A body text parameter, in characters (the body text itself is limited to 1024).
    pub const BODY_PARAM: usize = 1024;
    /// A URL button's URL, of which the dynamic suffix is a part.
    pub const URL_SUFFIX: usize = 2000;
    /// A quick reply button's payload.
    pub const PAYLOAD: usize = 1000;
    /// A copy-code button's coupon code.
    pub const COUPON_CODE: usize = 15;
    /// Buttons of a template (indexes 0..=9).
    pub const BUTTONS: u8 = 10;
}

/// ISO 4217 active alphabetic codes (2025), the `code` of a currency parameter.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

#[derive(Clone, Copy)]
pub(super) enum Where {
    Header,
    Body,
    Button,
}

fn failure(file: &Path, field: &str, message: String, hint: &str) -> RenderFailure {
    RenderFailure {
        file: file.to_path_buf(),
        variable: None,
        message,
        field: Some(field.to_owned()),
        hint: Some(hint.to_owned()),
    }
}

fn check_len(
    file: &Path,
    field: &str,
    value: &str,
    max: usize,
    what: &str,
) -> Result<(), RenderFailure> {
    let n = value.chars().count();
    if n > max {
        return Err(failure(
            file,
            field,
            format!("{what} is {n} characters, over Meta's {max}"),
            "shorten the value (or the recipient's field it comes from)",
        ));
    }
    Ok(())
}

/// Meta refuses a body text parameter with a new line, a tab or more than 4 spaces in a row
/// (error 132018).
fn check_body_text(file: &Path, field: &str, value: &str) -> Result<(), RenderFailure> {
    check_len(file, field, value, limit::BODY_PARAM, "the body parameter")?;
    if value.contains(['\n', '\r', '\t']) || value.contains("     ") {
        return Err(failure(file, field, "the body parameter has a new line, a tab or more than 4 spaces in a row, which Meta refuses (error 132018)".into(), "remove line breaks and tabs from the value, e.g. write it on one line"));
    }
    Ok(())
}

pub(super) fn render_slot(
    file: &Path,
    field: &str,
    slot: &Slot,
    at: Where,
    render: &mut dyn FnMut(&Part) -> Result<String, RenderFailure>,
) -> Result<WaParam, RenderFailure> {
    let mut r = |p: &Part| render(p);
    Ok(match slot {
        Slot::Text { name, part } => {
            // An empty text stays a warning (app/checks.rs), as before this block grew.
            let text = r(part)?;
            match at {
                Where::Header => {
                    check_len(file, field, &text, limit::HEADER_TEXT, "the header text")?
                }
                Where::Body => check_body_text(file, field, &text)?,
                Where::Button => check_len(
                    file,
                    field,
                    &text,
                    limit::URL_SUFFIX,
                    "the URL button suffix",
                )?,
            }
            WaParam::Text {
                parameter_name: name.clone(),
                text,
            }
        }
        Slot::Currency {
            name,
            fallback,
            code,
            amount,
        } => {
            let fallback_value = r(fallback)?;
            check_body_text(file, &format!("{field}.fallback_value"), &fallback_value)?;
            let code = r(code)?.trim().to_owned();
            if code.len() != 3 || !ISO_4217.split(' ').any(|c| c == code) {
                return Err(failure(
                    file,
                    &format!("{field}.code"),
                    format!("{code:?} is not an ISO 4217 currency code"),
                    "write the three capital letters, such as USD, BRL or EUR",
                ));
            }
            let text = r(amount)?;
            let amount_1000 = text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|a| i32::try_from(*a).is_ok())
                .ok_or_else(|| {
                    failure(
                        file,
                        &format!("{field}.amount_1000"),
                        format!("amount_1000 {text:?} is not a whole number (Meta's int32)"),
                        "give the amount times 1000 as an integer: 100990 for 100.99",
                    )
                })?;
            WaParam::Currency {
                parameter_name: name.clone(),
                currency: WaCurrency {
                    fallback_value,
                    code,
                    amount_1000,
                },
            }
        }
        Slot::DateTime { name, fallback } => {
            let fallback_value = r(fallback)?;
            check_body_text(file, &format!("{field}.fallback_value"), &fallback_value)?;
            WaParam::DateTime {
                parameter_name: name.clone(),
                date_time: WaDateTime { fallback_value },
            }
        }
        Slot::Media {
            kind,
            id,
            link,
            filename,
        } => {
            let mut opt = |p: &Option<Part>| p.as_ref().map(&mut r).transpose();
            let media = WaMedia {
                id: opt(id)?,
                link: opt(link)?,
                filename: opt(filename)?,
            };
            if let Some(l) = &media.link
                && !(l.starts_with("https://") || l.starts_with("http://"))
            {
                return Err(failure(
                    file,
                    &format!("{field}.link"),
                    format!("the {kind} link {l:?} is not an http(s) URL"),
                    "give the public https:// address of the media",
                ));
            }
            if media.id.as_deref().is_some_and(|i| i.trim().is_empty()) {
                return Err(failure(
                    file,
                    &format!("{field}.id"),
                    "the media id renders empty".into(),
                    "give the id Meta returned for the uploaded media",
                ));
            }
            match *kind {
                "image" => WaParam::Image { image: media },
                "video" => WaParam::Video { video: media },
                _ => WaParam::Document { document: media },
            }
        }
        Slot::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let mut coord = |p: &Part, key: &str, max: f64| {
                let t = r(p)?.trim().to_owned();
                match t.parse::<f64>() {
                    Ok(v) if v.is_finite() && v.abs() <= max => Ok(t),
                    _ => Err(failure(
                        file,
                        &format!("{field}.{key}"),
                        format!("{key} {t:?} is not a number between -{max} and {max}"),
                        "write decimal degrees such as -23.5505",
                    )),
                }
            };
            let latitude = coord(latitude, "latitude", 90.0)?;
            let longitude = coord(longitude, "longitude", 180.0)?;
            let mut opt = |p: &Option<Part>| p.as_ref().map(&mut r).transpose();
            WaParam::Location {
                location: WaLocation {
                    latitude,
                    longitude,
                    name: opt(name)?,
                    address: opt(address)?,
                },
            }
        }
        Slot::Payload(p) => {
            let payload = r(p)?;
            check_len(
                file,
                field,
                &payload,
                limit::PAYLOAD,
                "the quick reply payload",
            )?;
            WaParam::Payload { payload }
        }
        Slot::Coupon(p) => {
            let coupon_code = r(p)?;
            if coupon_code.trim().is_empty() {
                return Err(failure(
                    file,
                    field,
                    "the coupon code renders empty".into(),
                    "give every recipient a coupon",
                ));
            }
            check_len(
                file,
                field,
                &coupon_code,
                limit::COUPON_CODE,
                "the coupon code",
            )?;
            WaParam::CouponCode { coupon_code }
        }
    })
}
