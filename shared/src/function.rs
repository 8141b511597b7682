//! The Lambda functions of the stack that serve requests, by name: what each serves, takes and
//! loads. (The migrate function is a CloudFormation custom resource, not one of them.)

use std::{fmt, str::FromStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Health,
    Embed,
    Retrieve,
    Chat,
    Backup,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::Health,
        Function::Embed,
        Function::Retrieve,
        Function::Chat,
        Function::Backup,
    ];

    /// The function's name (its crate under `functions/`, its binary, its log prefix).
    pub fn name(self) -> &'static str {
        match self {
            Function::Health => "health",
            Function::Embed => "embed",
            Function::Retrieve => "retrieve",
            Function::Chat => "chat",
            Function::Backup => "backup",
        }
    }

    /// Whether it embeds (loads the model). Health must answer even when the model layer is
    /// broken, and backups copy stored vectors without computing any.
    pub fn needs_model(self) -> bool {
        matches!(self, Function::Embed | Function::Retrieve | Function::Chat)
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Function {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Function::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown function '{s}': use health, embed, retrieve, chat or backup")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Function::ALL {
            assert_eq!(f.name().parse::<Function>(), Ok(f));
        }
        assert!("migrate".parse::<Function>().is_err());
    }
}
