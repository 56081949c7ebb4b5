//! E-mail addresses, anchored on `@` (found with `memchr`) and expanded both ways.

use super::{Detector, Finding, at};

pub(super) fn find(text: &[u8], out: &mut Vec<Finding>) {
    // Expansion never crosses an earlier match or another `@`, so each byte is read at most
    // twice: linear time even for `a@a@a@…`. An `@` written `%40` (a URL's query, an access
    // log: `?email=jane%40example.com`) counts too.
    let mut ats = memchr::memchr_iter(b'@', text).map(|a| (a, 1)).peekable();
    let mut escaped = memchr::memmem::find_iter(text, b"%40")
        .map(|a| (a, 3))
        .peekable();
    let mut floor = 0;
    loop {
        let next = match (ats.peek(), escaped.peek()) {
            (Some(&(a, _)), Some(&(e, _))) if e < a => escaped.next(),
            (Some(_), _) => ats.next(),
            (None, _) => escaped.next(),
        };
        let Some((a, width)) = next else { break };
        if a < floor {
            continue;
        }
        let Some(start) = local_start(text, floor, a) else {
            continue;
        };
        let Some(end) = domain_end(text, a + width) else {
            continue;
        };
        if is_code_or_remote(text, start, end) {
            continue;
        }
        out.push(Finding {
            detector: Detector::Email,
            range: start..end,
        });
        floor = end;
    }
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-' | b'\'')
}

/// The character that ends just before `i`, decoded, with its length (non-ASCII only).
fn char_before(text: &[u8], i: usize) -> Option<(char, usize)> {
    let from = i.saturating_sub(4);
    let tail = &text[from..i];
    (1..=tail.len().min(4)).find_map(|len| {
        let c = std::str::from_utf8(&tail[tail.len() - len..])
            .ok()?
            .chars()
            .next()?;
        (!c.is_ascii()).then_some((c, len))
    })
}

/// The character that starts at `i`, decoded, with its length (non-ASCII only).
fn char_at(text: &[u8], i: usize) -> Option<(char, usize)> {
    let head = text.get(i..(i + 4).min(text.len()))?;
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
    };
    let c = valid.chars().next()?;
    (!c.is_ascii()).then(|| (c, c.len_utf8()))
}

/// The start of the local part ending at the `@` at `a`: `[A-Za-z0-9._%+'-]+` (an apostrophe
/// as in `o'hara`, found by the second red-team review: the name before it went out), no
/// leading or trailing dot and no leading apostrophe (a quote around the address). A local part
/// of letters of another script (`иван@`, `用户@`: internationalised addresses) is read when
/// the `@` directly follows such a letter; an ASCII local part glued to another script's text
/// (`请联系alice@…`) starts at its first ASCII character.
fn local_start(text: &[u8], floor: usize, a: usize) -> Option<usize> {
    let mut s = a;
    while s > floor && is_local(text[s - 1]) {
        s -= 1;
    }
    if s == a {
        while let Some((c, len)) = char_before(text, s).filter(|&(_, l)| s >= floor + l) {
            if !c.is_alphanumeric() {
                break;
            }
            s -= len;
            while s > floor && is_local(text[s - 1]) {
                s -= 1;
            }
        }
        if s == a {
            return None;
        }
    }
    // The letter of a `\n` escape left in the text is not part of the address.
    if s > 0 && s < a && text[s - 1] == b'\\' && matches!(text[s], b'n' | b'r' | b't') {
        s += 1;
    }
    while s < a && matches!(text[s], b'.' | b'\'') {
        s += 1;
    }
    (s < a && text[a - 1] != b'.').then_some(s)
}

/// Top-level domains of three letters or more that addresses use: the generic ones in common use,
/// and the names of private and reserved ones (`corp`, `internal`, `local`, `test`,
/// `example`). Two letters are a country code, any of them. Sorted, for a binary search. Without
/// it `x@self.weight`, `getty@tty1.service` and `emoji@large.png` would be addresses.
#[rustfmt::skip]
const GENERIC_TLDS: &[&str] = &[
    "academy", "accountant", "accountants", "actor", "ads", "adult", "aero", "africa",
    "agency", "airforce", "amazon", "amsterdam", "app", "apple", "arab", "archi", "army",
    "arpa", "art", "asia", "associates", "attorney", "auction", "audio", "auto", "autos",
    "baby", "band", "bank", "bar", "barcelona", "bargains", "bayern", "beer", "berlin", "best",
    "bet", "bible", "bid", "bike", "bingo", "bio", "biz", "black", "blog", "blue", "boston",
    "bot", "boutique", "brussels", "build", "builders", "business", "buzz", "cab", "cafe",
    "cam", "camera", "camp", "capital", "car", "cards", "care", "career", "careers", "cars",
    "casa", "cash", "casino", "cat", "catering", "center", "ceo", "charity", "chat", "cheap",
    "church", "city", "claims", "cleaning", "click", "clinic", "clothing", "cloud", "club",
    "coach", "codes", "coffee", "college", "cologne", "com", "community", "company",
    "computer", "condos", "construction", "consulting", "contractors", "cooking", "cool",
    "coop", "corp", "country", "coupons", "courses", "cpa", "credit", "creditcard", "cricket",
    "cruises", "cymru", "dance", "date", "dating", "deals", "degree", "delivery", "democrat",
    "dental", "dentist", "design", "dev", "diamonds", "diet", "digital", "direct", "directory",
    "discount", "doctor", "dog", "domains", "download", "dubai", "earth", "eco", "edu",
    "education", "email", "energy", "engineer", "engineering", "enterprises", "equipment",
    "estate", "eus", "events", "example", "exchange", "expert", "exposed", "express", "fail",
    "faith", "family", "fan", "fans", "farm", "fashion", "film", "finance", "financial",
    "fish", "fit", "fitness", "flights", "florist", "football", "forsale", "foundation",
    "free", "frl", "fun", "fund", "furniture", "futbol", "fyi", "gal", "gallery", "game",
    "games", "garden", "gay", "gent", "gift", "gifts", "gives", "glass", "gle", "global",
    "gmbh", "gold", "golf", "goog", "google", "gov", "graphics", "gratis", "green", "gripe",
    "group", "guide", "guitars", "guru", "hamburg", "health", "healthcare", "help", "helsinki",
    "hiphop", "hockey", "holdings", "holiday", "home", "homes", "horse", "hospital", "host",
    "hotel", "hotels", "house", "how", "icu", "immo", "inc", "industries", "info", "ink",
    "institute", "insurance", "insure", "int", "internal", "international", "intranet",
    "invalid", "investments", "irish", "istanbul", "jewelry", "jobs", "juegos", "kitchen",
    "kiwi", "koeln", "lan", "land", "lat", "law", "lawyer", "lease", "legal", "lgbt", "life",
    "lighting", "limited", "limo", "link", "live", "llc", "llp", "loan", "loans", "local",
    "localdomain", "localhost", "lol", "london", "love", "ltd", "luxury", "madrid", "maison",
    "management", "market", "marketing", "mba", "med", "media", "melbourne", "memorial", "men",
    "menu", "miami", "microsoft", "mil", "mobi", "mobile", "moda", "mom", "money", "monster",
    "mortgage", "moscow", "movie", "museum", "music", "name", "navy", "network", "new", "news",
    "ngo", "ninja", "nrw", "nyc", "one", "ong", "onl", "online", "ooo", "org", "organic",
    "page", "paris", "partners", "parts", "party", "pet", "phd", "photo", "photography",
    "photos", "pics", "pictures", "pink", "pizza", "place", "plumbing", "plus", "poker",
    "porn", "post", "press", "pro", "productions", "prof", "promo", "properties", "property",
    "pub", "qpon", "quebec", "quest", "racing", "radio", "realestate", "realty", "recipes",
    "red", "rehab", "reise", "reisen", "rent", "rentals", "repair", "report", "republican",
    "rest", "restaurant", "review", "reviews", "rich", "rio", "rip", "rocks", "rodeo", "rsvp",
    "ruhr", "run", "sale", "salon", "sarl", "sas", "school", "schule", "science", "scot",
    "security", "select", "services", "sex", "sexy", "shoes", "shop", "shopping", "show",
    "singles", "site", "ski", "soccer", "social", "software", "solar", "solutions", "soy",
    "spa", "space", "sport", "stockholm", "storage", "store", "studio", "style", "sucks",
    "supplies", "supply", "support", "surf", "surgery", "swiss", "sydney", "systems", "taipei",
    "tattoo", "tax", "taxi", "team", "tech", "technology", "tel", "tennis", "test", "theater",
    "tickets", "tienda", "tips", "tires", "tirol", "today", "tokyo", "tools", "top", "tours",
    "town", "toys", "trade", "trading", "training", "travel", "tube", "university", "uno",
    "vacations", "vana", "vegas", "ventures", "vet", "viajes", "video", "villas", "vin", "vip",
    "vision", "vlaanderen", "vodka", "vote", "voting", "voto", "voyage", "wales", "wang",
    "watch", "webcam", "website", "wedding", "wien", "wiki", "win", "wine", "work", "works",
    "world", "wow", "wtf", "xbox", "xin", "xxx", "xyz", "yahoo", "yoga", "yokohama", "you",
    "zone", "zuerich",
];

/// Internationalised top-level domains in use (a label of another script: `пример.рф`).
const IDN_TLDS: &[&str] = &[
    "рф",
    "рус",
    "бел",
    "укр",
    "қаз",
    "срб",
    "мкд",
    "мон",
    "онлайн",
    "сайт",
    "орг",
    "москва",
    "дети",
    "中国",
    "中國",
    "公司",
    "网络",
    "網絡",
    "台灣",
    "台湾",
    "香港",
    "新加坡",
    "在线",
    "中文网",
    "商城",
    "网店",
    "移动",
    "手机",
    "游戏",
    "企业",
    "娱乐",
    "信息",
    "网址",
    "コム",
    "みんな",
    "ストア",
    "한국",
    "닷컴",
    "ไทย",
    "भारत",
    "مصر",
    "السعودية",
    "امارات",
    "ایران",
    "ελ",
    "ευ",
    "გე",
    "հայ",
    "ישראל",
];

/// Whether `label` can end a domain: two ASCII letters (a country), a known generic or
/// internationalised top-level domain, or an ASCII-encoded one (`xn--p1ai`). Written in one
/// case or capitalised: `k.mT` in code is not Malta.
fn is_tld(label: &[u8]) -> bool {
    if let Ok(l) = std::str::from_utf8(label) {
        if !l.is_ascii() {
            return IDN_TLDS.contains(&l);
        }
    }
    if label.len() < 2 || !label.iter().all(u8::is_ascii_alphanumeric) {
        return label.len() > 4 && label[..4].eq_ignore_ascii_case(b"xn--");
    }
    let upper_after_lower = label
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    if upper_after_lower || !label.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    if label.len() == 2 {
        return true;
    }
    let lower = label.to_ascii_lowercase();
    let Ok(lower) = std::str::from_utf8(&lower) else {
        return false;
    };
    GENERIC_TLDS.binary_search(&lower).is_ok()
}

/// The ideographic full stop (U+3002), which domain names treat as a dot (`example。com`).
const IDEOGRAPHIC_STOP: &[u8] = "\u{3002}".as_bytes();

/// The end of the domain starting at `d`: dot-separated labels of `[A-Za-z0-9-]` or letters
/// and digits of any script (`пример.рф`, `例子.公司`), not starting or ending with `-`, at
/// least two, the last one a top-level domain ([`is_tld`]). Trailing labels that do not
/// qualify (`a@b.com.123`) are left out; a last label that runs from ASCII letters into another
/// script (`example.com请回复`, text glued to the address) ends where the script changes.
fn domain_end(text: &[u8], d: usize) -> Option<usize> {
    let mut i = d;
    let mut labels = 0;
    let mut end = None;
    loop {
        let start = i;
        // Where the label's leading ASCII letters and digits end, if other characters follow.
        let mut ascii_end = None;
        loop {
            let b = at(text, i);
            if b.is_ascii_alphanumeric() || b == b'-' {
                i += 1;
            } else if let Some((c, len)) = char_at(text, i).filter(|(c, _)| c.is_alphanumeric()) {
                let _ = c;
                if i > start && text[start..i].iter().all(u8::is_ascii_alphanumeric) {
                    ascii_end.get_or_insert(i);
                }
                i += len;
            } else {
                break;
            }
        }
        let mut stop = i;
        while stop > start && text[stop - 1] == b'-' {
            stop -= 1;
        }
        if stop == start || text[start] == b'-' {
            break;
        }
        let label = &text[start..stop];
        labels += 1;
        if labels == 1 && is_density_suffix(label) {
            return None;
        }
        // The ideographic full stop is a dot between ASCII labels only: in Chinese or Japanese
        // prose it ends a sentence (`谢谢@小明。明天见` is no address).
        let dot = if at(text, i) == b'.' {
            1
        } else if text[i..].starts_with(IDEOGRAPHIC_STOP)
            && label.is_ascii()
            && at(text, i + IDEOGRAPHIC_STOP.len()).is_ascii_alphanumeric()
        {
            IDEOGRAPHIC_STOP.len()
        } else {
            0
        };
        let continues = stop == i && dot > 0 && is_label_start(text, i + dot);
        if labels >= 2 {
            match ascii_end {
                // `example.com请回复`: the address ends after `com`.
                Some(e) if !continues && is_tld(&text[start..e]) => {
                    end = Some(e);
                    break;
                }
                _ if is_tld(label) => end = Some(stop),
                _ => {}
            }
        }
        if !continues {
            break;
        }
        i += dot;
    }
    end
}

/// Whether a domain label can start at `i`.
fn is_label_start(text: &[u8], i: usize) -> bool {
    at(text, i).is_ascii_alphanumeric()
        || char_at(text, i).is_some_and(|(c, _)| c.is_alphanumeric())
}

/// An `@` between names that is not an address: a matrix product or a method call in code
/// (`q@k.transpose(-2, -1)`, `h@self.embed.weight.T`: the "domain" is followed by `(` or by
/// a one-letter label), an scp-style Git or SSH remote (`git@github.com:org/repo.git`), or the
/// user part of a URL (`ssh://git@github.com/…`, `https://user@bitbucket.org/…`).
fn is_code_or_remote(text: &[u8], start: usize, end: usize) -> bool {
    let after = at(text, end);
    let next = at(text, end + 1);
    let call = after == b'(' || after == b'[';
    let member =
        after == b'.' && next.is_ascii_alphabetic() && !at(text, end + 2).is_ascii_alphanumeric();
    // `host:path` with a path (`org/repo.git`, `~/x`, `/srv`); `alice@example.com:hunter2` in a
    // credential dump is an address.
    let path = text[(end + 1).min(text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'~' | b'_' | b'.' | b'-'))
        .any(|&b| b == b'/' || b == b'~');
    let scp = after == b':' && path;
    let userinfo = start >= 3 && &text[start - 3..start] == b"://";
    call || member || scp || userinfo
}

/// `2x` in `icon@2x.png`: an asset name, not a host.
fn is_density_suffix(label: &[u8]) -> bool {
    matches!(label.split_last(), Some((b'x', digits)) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use crate::detect::Detector;
    use crate::detect::tests::table;

    #[test]
    fn the_tld_table_is_sorted_lower_case_and_searchable() {
        let t = super::GENERIC_TLDS;
        assert!(t.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert!(
            t.iter()
                .all(|d| d.len() >= 3 && d.bytes().all(|b| b.is_ascii_lowercase()))
        );
        for d in ["com", "org", "dev", "internal", "zuerich", "academy"] {
            assert!(super::is_tld(d.as_bytes()), "{d}");
        }
        for d in ["weight", "service", "png", "mT", "T", "c0m"] {
            assert!(!super::is_tld(d.as_bytes()), "{d}");
        }
    }

    #[test]
    fn email() {
        table(
            Detector::Email,
            &[
                ("mail alice@example.com.", &["alice@example.com"]),
                (
                    "<bob.smith+tag@mail.example.co.uk>",
                    &["bob.smith+tag@mail.example.co.uk"],
                ),
                (
                    r#"{"email":"j_doe-99%x@sub-domain.example.org"}"#,
                    &["j_doe-99%x@sub-domain.example.org"],
                ),
                ("a@b.io,c@d.dev", &["a@b.io", "c@d.dev"]),
                ("..lead@example.com", &["lead@example.com"]),
                ("x\\nalice@example.com", &["alice@example.com"]),
                (
                    "to alice.o'hara+tag@sub.example.co.uk or 'bob@example.com'",
                    &["alice.o'hara+tag@sub.example.co.uk", "bob@example.com"],
                ),
                // Internationalised addresses; the ideographic full stop as a dot.
                (
                    "иван@пример.рф, ivan@example.рф, 用户@例子.公司 θέμα@example.gr",
                    &[
                        "иван@пример.рф",
                        "ivan@example.рф",
                        "用户@例子.公司",
                        "θέμα@example.gr",
                    ],
                ),
                ("alice@example\u{3002}com", &["alice@example\u{3002}com"]),
                (
                    "请联系alice@example.com。 mail bob@example.com请回复",
                    &["alice@example.com", "bob@example.com"],
                ),
                (
                    "email me: alice@example.com: thanks",
                    &["alice@example.com"],
                ),
                (
                    "GET /signup?email=jane%40example.com&x=1 and bob@example.org",
                    &["jane%40example.com", "bob@example.org"],
                ),
                (
                    "a@b.com.123 and a@example.com-",
                    &["a@b.com", "a@example.com"],
                ),
                // Near misses.
                ("@media @alice user@ @example.com", &[]),
                ("user@localhost user@example.c user@example.123", &[]),
                ("trail.@example.com icon@2x.png pkg@1.2.3", &[]),
                ("a@-bad.com a@.com", &[]),
                // Code and remotes, not addresses.
                (
                    "scores = q@k.transpose(-2, -1); y = W@x.flatten(); h@self.embed.weight.T",
                    &[],
                ),
                (
                    "git clone git@github.com:org/repo.git; ssh://git@github.com/org/repo; https://user@bitbucket.org/x",
                    &[],
                ),
                (
                    "dump alice@example.com:hunter2 admin@corp.internal bob@EXAMPLE.COM x@y.Com",
                    &[
                        "alice@example.com",
                        "admin@corp.internal",
                        "bob@EXAMPLE.COM",
                        "x@y.Com",
                    ],
                ),
                // Code, unit and file names, prose in other scripts.
                (
                    "out = x@self.weight + self.bias; attn = q@k.mT * s; z = a@b.real; this@MainActivity.applicationContext",
                    &[],
                ),
                (
                    "Started getty@tty1.service, openvpn@server.service; emoji@large.png actions/setup-node@main.yml",
                    &[],
                ),
                (
                    "感谢@张三。李四说得对 谢谢@小明。明天见 Привет@всем.Сегодня",
                    &[],
                ),
            ],
        );
    }
}
