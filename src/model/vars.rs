//! A recipient's template variables: the campaign's `vars` overlaid by the recipient's own
//! fields, read in place. Building a JSON map per recipient cost more than parsing, rendering
//! and scheduling it together; this view answers lookups and serializes without one.

use std::sync::Arc;

use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::audience::Fields;

/// The variables a recipient's message is rendered with (docs/campaign-reference.md: a recipient's own fields
/// win). Campaign vars come first, in their order, then the recipient's other fields in theirs.
#[derive(Debug, Clone, PartialEq)]
pub struct Vars {
    campaign: Arc<Map<String, Value>>,
    fields: Fields,
    /// A variable disparo computes per recipient (`unsubscribe_url`): it wins over a field
    /// of the same name, so an audience cannot put another link there.
    generated: Option<Box<(&'static str, Value)>>,
}

/// An empty cell means "no value of my own": the campaign's var, if any, applies.
fn is_blank(v: &Value) -> bool {
    v.as_str().is_some_and(str::is_empty)
}

impl Vars {
    pub fn new(campaign: Arc<Map<String, Value>>, fields: Fields) -> Vars {
        Vars {
            campaign,
            fields,
            generated: None,
        }
    }

    /// These variables with `name` computed by disparo for this recipient.
    pub fn with_generated(mut self, name: &'static str, value: Value) -> Vars {
        self.generated = Some(Box::new((name, value)));
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        if let Some(g) = &self.generated
            && g.0 == key
        {
            return Some(&g.1);
        }
        match self.fields.get(key) {
            Some(own) if !is_blank(own) => Some(own),
            own => self.campaign.get(key).or(own),
        }
    }

    /// Every variable with its value, in order: campaign vars first, then the recipient's own.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let campaign = self.campaign.iter().map(|(k, campaign_value)| {
            let v = match self.fields.get(k) {
                Some(own) if !is_blank(own) => own,
                _ => campaign_value,
            };
            (k.as_str(), v)
        });
        let generated = self.generated.as_deref();
        let shadowed = move |k: &str| generated.is_some_and(|g| g.0 == k);
        let campaign = campaign.filter(move |(k, _)| !shadowed(k));
        let own = self
            .fields
            .iter()
            .filter(move |(k, _)| !self.campaign.contains_key(*k) && !shadowed(k));
        campaign.chain(own).chain(generated.map(|g| (g.0, &g.1)))
    }

    /// The recipient's own fields, taken back (to reuse their buffers).
    pub fn into_fields(self) -> Fields {
        self.fields
    }

    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

impl Serialize for Vars {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::audience::Header;
    use serde_json::json;

    fn vars(campaign: Value, names: &[&str], values: Vec<Value>) -> Vars {
        let Value::Object(c) = campaign else {
            unreachable!()
        };
        let header = Arc::new(Header::new(names.iter().map(|s| s.to_string()).collect()));
        Vars::new(Arc::new(c), Fields::new(header, values))
    }

    #[test]
    fn own_non_empty_values_win_and_campaign_vars_lead() {
        let v = vars(
            json!({"coupon": "BF26", "store": "Loja", "city": "SP"}),
            &["id", "city", "store", "name"],
            vec![json!("c1"), json!("Lisboa"), json!(""), json!("Ana")],
        );
        assert_eq!(v.get("city"), Some(&json!("Lisboa")));
        assert_eq!(v.get("store"), Some(&json!("Loja")), "an empty cell defers");
        assert_eq!(v.get("coupon"), Some(&json!("BF26")));
        assert_eq!(v.get("missing"), None);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"coupon":"BF26","store":"Loja","city":"Lisboa","id":"c1","name":"Ana"}"#
        );
        assert_eq!(
            Value::Object(v.to_map()),
            serde_json::from_str::<Value>(&serde_json::to_string(&v).unwrap()).unwrap()
        );
    }

    #[test]
    fn an_empty_cell_without_a_campaign_var_stays_empty() {
        let v = vars(json!({}), &["id", "nick"], vec![json!("c1"), json!("")]);
        assert_eq!(v.get("nick"), Some(&json!("")));
    }
}
