//! E-mail addresses, anchored on `@` (found with `memchr`) and expanded both ways.

use super::{Detector, Edges, Finding, at};

pub(super) fn find(text: &[u8], edges: Edges<'_>, out: &mut Vec<Finding>) {
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
        let Some(end) = domain_end(text, a + width, edges) else {
            continue;
        };
        if is_code_or_remote(text, start, end) || &text[start..a] == b"git" {
            continue;
        }
        // Claude Code's own attribution address, which every request of it carries in a
        // system reminder (`Co-Authored-By: Claude … <noreply@anthropic.com>`): no one's
        // personal data, and removing it changed every prompt (seventeenth session's third
        // review).
        if text[start..end].eq_ignore_ascii_case(b"noreply@anthropic.com") {
            floor = end;
            continue;
        }
        out.push(Finding {
            detector: Detector::Email,
            range: start..end,
        });
        floor = end;
    }
}

/// The longest local part read: an address is at most 254 bytes (RFC 5321), so a longer run
/// before an `@` is not one (and a stream need hold no more of it).
const MAX_LOCAL: usize = 254;

/// The most of an address a stream holds while it is still growing: a local part of
/// [`MAX_LOCAL`], the `@` and a host name of at most 253 bytes, and the byte that decides it.
/// An address-like run longer than that is released as the window moves on.
const MAX_OPEN_ADDRESS: usize = 2 * MAX_LOCAL + 4;

/// Where an address that may still change when text is appended to `text` starts, at or
/// after `from`: the text ends in a run that may still be its local part (no longer than
/// [`MAX_LOCAL`]), or in its host, or in the `:path` after the host that would make it an scp
/// remote. Only the last `@` can be open: a host is never read past another one.
pub(super) fn open(text: &[u8], from: usize) -> Option<usize> {
    let len = text.len();
    let from = from.min(len);
    // The host, and the path after `host:`, as far as `domain_end` and `is_code_or_remote`
    // read them (any non-ASCII byte may be a letter of a host); `%` for a `%40`.
    let tail = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"-._~:%".contains(&b);
    let mut t = len;
    while t > from && len - t <= MAX_OPEN_ADDRESS && tail(text[t - 1]) {
        t -= 1;
    }
    let at_sign = if t > from && text[t - 1] == b'@' {
        Some((t - 1, 1))
    } else {
        None
    };
    let escaped = memchr::memmem::rfind(&text[t..], b"%40").map(|i| (t + i, 3));
    let last = match (at_sign, escaped) {
        (_, Some(e)) => Some(e),
        (a, None) => a,
    };
    let mut first = None;
    if let Some((a, width)) = last {
        let host = |b: &u8| b.is_ascii_alphanumeric() || *b >= 0x80 || matches!(b, b'-' | b'.');
        let d = a + width;
        let h = d + text[d..].iter().position(|b| !host(b)).unwrap_or(len - d);
        let undecided = h == len
            || (text[h] == b':' && {
                let path = &text[h + 1..];
                let p = path.iter().position(|b| {
                    !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'~' | b'_' | b'.' | b'-'))
                });
                p.is_none() && !path.iter().any(|&b| b == b'/' || b == b'~')
            });
        if undecided {
            first = local_start(text, from, a);
        }
    }
    // A run that an `@` may still follow.
    let s = back_over_letters(text, from, back_over_ascii(text, from, len));
    if s < len && len - s <= MAX_LOCAL {
        first = Some(first.map_or(s, |f: usize| f.min(s)));
    }
    first.filter(|&f| len - f <= MAX_OPEN_ADDRESS)
}

/// Where the run of ASCII local-part characters ending at `s` starts (not before `floor`).
fn back_over_ascii(text: &[u8], floor: usize, mut s: usize) -> usize {
    while s > floor && is_local(text[s - 1]) {
        s -= 1;
    }
    s
}

/// Where a local part of any script ending at `s` starts: letters of every script, with runs
/// of ASCII local-part characters between them (not before `floor`).
fn back_over_letters(text: &[u8], floor: usize, mut s: usize) -> usize {
    while let Some((c, l)) = char_before(text, s).filter(|&(_, l)| s >= floor + l) {
        if !c.is_alphanumeric() {
            break;
        }
        s = back_over_ascii(text, floor, s - l);
    }
    s
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
    let mut s = back_over_ascii(text, floor, a);
    if s == a {
        s = back_over_letters(text, floor, s);
        if s == a {
            return None;
        }
    }
    if a - s > MAX_LOCAL {
        return None;
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

/// Top-level domains of three letters or more: every one in the Public Suffix List (its
/// 2023 release, as Debian's `publicsuffix` package ships it), less the few that are also file
/// extensions or names code uses after a `.` (`zip`, `mov`, `next`, `data`, `map`, …), plus the
/// private and reserved names addresses use (`corp`, `internal`, `local`, `test`, `example`).
/// Two letters are a country code, any of them. Sorted, for a binary search. Without it
/// `x@self.weight`, `getty@tty1.service` and `emoji@large.png` would be addresses.
#[rustfmt::skip]
const GENERIC_TLDS: &[&str] = &[
    "aaa", "aarp", "abarth", "abb", "abbott", "abbvie", "abc", "able", "abogado", "abudhabi",
    "academy", "accenture", "accountant", "accountants", "aco", "actor", "ads", "adult", "aeg",
    "aero", "aetna", "afl", "africa", "agakhan", "agency", "aig", "airbus", "airforce",
    "airtel", "akdn", "alfaromeo", "alibaba", "alipay", "allfinanz", "allstate", "ally",
    "alsace", "alstom", "amazon", "americanexpress", "americanfamily", "amex", "amfam",
    "amica", "amsterdam", "analytics", "android", "anquan", "anz", "aol", "apartments", "app",
    "apple", "aquarelle", "arab", "aramco", "archi", "army", "arpa", "art", "arte", "asda",
    "asia", "associates", "athleta", "attorney", "auction", "audi", "audible", "audio",
    "auspost", "author", "auto", "autos", "avianca", "aws", "axa", "azure", "baby", "baidu",
    "banamex", "bananarepublic", "band", "bank", "bar", "barcelona", "barclaycard", "barclays",
    "barefoot", "bargains", "baseball", "basketball", "bauhaus", "bayern", "bbc", "bbt",
    "bbva", "bcg", "bcn", "beats", "beauty", "beer", "bentley", "berlin", "best", "bestbuy",
    "bet", "bharti", "bible", "bid", "bike", "bing", "bingo", "bio", "biz", "black",
    "blackfriday", "blockbuster", "blog", "bloomberg", "blue", "bms", "bmw", "bnpparibas",
    "boats", "boehringer", "bofa", "bom", "bond", "boo", "book", "booking", "bosch", "bostik",
    "boston", "bot", "boutique", "box", "bradesco", "bridgestone", "broadway", "broker",
    "brother", "brussels", "build", "builders", "business", "buy", "buzz", "bzh", "cab",
    "cafe", "cal", "calvinklein", "cam", "camera", "camp", "canon", "capetown", "capital",
    "capitalone", "car", "caravan", "cards", "care", "career", "careers", "cars", "casa",
    "case", "cash", "casino", "cat", "catering", "catholic", "cba", "cbn", "cbre", "cbs",
    "center", "ceo", "cern", "cfa", "cfd", "chanel", "channel", "charity", "chase", "chat",
    "cheap", "chintai", "christmas", "chrome", "church", "cipriani", "circle", "cisco",
    "citadel", "citi", "citic", "city", "cityeats", "claims", "cleaning", "click", "clinic",
    "clinique", "clothing", "cloud", "club", "clubmed", "coach", "codes", "coffee", "college",
    "cologne", "com", "comcast", "commbank", "community", "company", "compare", "computer",
    "comsec", "condos", "construction", "consulting", "contact", "contractors", "cooking",
    "cookingchannel", "cool", "coop", "corp", "corsica", "country", "coupon", "coupons",
    "courses", "cpa", "credit", "creditcard", "creditunion", "cricket", "crown", "crs",
    "cruise", "cruises", "cuisinella", "cymru", "cyou", "dabur", "dad", "dance", "date",
    "dating", "datsun", "day", "dclk", "dds", "deal", "dealer", "deals", "degree", "delivery",
    "dell", "deloitte", "delta", "democrat", "dental", "dentist", "desi", "design", "dev",
    "dhl", "diamonds", "diet", "digital", "direct", "directory", "discount", "discover",
    "dish", "diy", "dnp", "docs", "doctor", "dog", "domains", "dot", "download", "drive",
    "dtv", "dubai", "dunlop", "dupont", "durban", "dvag", "dvr", "earth", "eat", "eco",
    "edeka", "edu", "education", "email", "emerck", "energy", "engineer", "engineering",
    "enterprises", "epson", "equipment", "ericsson", "erni", "esq", "estate", "etisalat",
    "eurovision", "eus", "events", "example", "exchange", "expert", "exposed", "express",
    "extraspace", "fage", "fail", "fairwinds", "faith", "family", "fan", "fans", "farm",
    "farmers", "fashion", "fast", "fedex", "feedback", "ferrari", "ferrero", "fiat",
    "fidelity", "fido", "film", "final", "finance", "financial", "fire", "firestone",
    "firmdale", "fish", "fishing", "fit", "fitness", "flickr", "flights", "flir", "florist",
    "flowers", "fly", "foo", "food", "foodnetwork", "football", "ford", "forex", "forsale",
    "forum", "foundation", "fox", "free", "fresenius", "frl", "frogans", "frontdoor",
    "frontier", "ftr", "fujitsu", "fun", "fund", "furniture", "futbol", "fyi", "gal",
    "gallery", "gallo", "gallup", "game", "games", "gap", "garden", "gay", "gbiz", "gdn",
    "gea", "gent", "genting", "george", "ggee", "gift", "gifts", "gives", "giving", "glass",
    "gle", "global", "globo", "gmail", "gmbh", "gmo", "gmx", "godaddy", "gold", "goldpoint",
    "golf", "goo", "goodyear", "goog", "google", "gop", "got", "gov", "grainger", "graphics",
    "gratis", "green", "gripe", "grocery", "group", "guardian", "gucci", "guge", "guide",
    "guitars", "guru", "hair", "hamburg", "hangout", "haus", "hbo", "hdfc", "hdfcbank",
    "health", "healthcare", "help", "helsinki", "here", "hermes", "hgtv", "hiphop",
    "hisamitsu", "hitachi", "hiv", "hkt", "hockey", "holdings", "holiday", "home", "homedepot",
    "homegoods", "homes", "homesense", "honda", "horse", "hospital", "host", "hosting", "hot",
    "hoteles", "hotels", "hotmail", "house", "how", "hsbc", "hughes", "hyatt", "hyundai",
    "ibm", "icbc", "ice", "icu", "ieee", "ifm", "ikano", "imamat", "imdb", "immo",
    "immobilien", "inc", "industries", "infiniti", "info", "ing", "ink", "institute",
    "insurance", "insure", "int", "internal", "international", "intranet", "intuit", "invalid",
    "investments", "ipiranga", "irish", "ismaili", "ist", "istanbul", "itau", "itv", "jaguar",
    "java", "jcb", "jeep", "jetzt", "jewelry", "jio", "jll", "jmp", "jnj", "jobs", "joburg",
    "jot", "joy", "jpmorgan", "jprs", "juegos", "juniper", "kaufen", "kddi", "kerryhotels",
    "kerrylogistics", "kerryproperties", "kfh", "kia", "kids", "kim", "kinder", "kindle",
    "kitchen", "kiwi", "koeln", "komatsu", "kosher", "kpmg", "kpn", "krd", "kred", "kuokgroup",
    "kyoto", "lacaixa", "lamborghini", "lamer", "lan", "lancaster", "lancia", "land",
    "landrover", "lanxess", "lasalle", "lat", "latino", "latrobe", "law", "lawyer", "lds",
    "lease", "leclerc", "lefrak", "legal", "lego", "lexus", "lgbt", "lidl", "life",
    "lifeinsurance", "lifestyle", "lighting", "like", "lilly", "limited", "limo", "lincoln",
    "linde", "link", "lipsy", "live", "living", "llc", "llp", "loan", "loans", "local",
    "localdomain", "localhost", "locker", "locus", "lol", "london", "lotte", "lotto", "love",
    "lpl", "lplfinancial", "ltd", "ltda", "lundbeck", "luxe", "luxury", "macys", "madrid",
    "maif", "maison", "makeup", "man", "management", "mango", "market", "marketing", "markets",
    "marriott", "marshalls", "maserati", "mattel", "mba", "mckinsey", "med", "media", "meet",
    "melbourne", "meme", "memorial", "men", "menu", "merckmsd", "miami", "microsoft", "mil",
    "mini", "mint", "mit", "mitsubishi", "mlb", "mls", "mma", "mobi", "mobile", "moda", "moe",
    "moi", "mom", "monash", "money", "monster", "mormon", "mortgage", "moscow", "moto",
    "motorcycles", "movie", "msd", "mtn", "mtr", "museum", "music", "mutual", "nab", "nagoya",
    "name", "natura", "navy", "nba", "nec", "net", "netbank", "netflix", "network", "neustar",
    "new", "news", "nextdirect", "nexus", "nfl", "ngo", "nhk", "nico", "nike", "nikon",
    "ninja", "nissan", "nissay", "nokia", "northwesternmutual", "norton", "now", "nowruz",
    "nowtv", "nra", "nrw", "ntt", "nyc", "obi", "observer", "office", "okinawa", "olayan",
    "olayangroup", "oldnavy", "ollo", "omega", "one", "ong", "onion", "onl", "online", "ooo",
    "oracle", "orange", "org", "organic", "origins", "osaka", "otsuka", "ott", "ovh", "page",
    "panasonic", "paris", "pars", "partners", "parts", "party", "passagens", "pay", "pccw",
    "pet", "pfizer", "pharmacy", "phd", "philips", "phone", "photo", "photography", "photos",
    "physio", "pics", "pictet", "pictures", "pid", "pin", "ping", "pink", "pioneer", "pizza",
    "place", "playstation", "plumbing", "plus", "pnc", "pohl", "poker", "politie", "porn",
    "post", "pramerica", "praxi", "press", "prime", "pro", "prod", "productions", "prof",
    "progressive", "promo", "properties", "property", "protection", "pru", "prudential", "pub",
    "pwc", "qpon", "quebec", "quest", "racing", "radio", "realestate", "realtor", "realty",
    "recipes", "red", "redstone", "redumbrella", "rehab", "reise", "reisen", "reit",
    "reliance", "ren", "rent", "rentals", "repair", "report", "republican", "rest",
    "restaurant", "review", "reviews", "rexroth", "rich", "richardli", "ricoh", "ril", "rio",
    "rip", "rocher", "rocks", "rodeo", "rogers", "room", "rsvp", "rugby", "ruhr", "rwe",
    "ryukyu", "saarland", "safe", "safety", "sakura", "sale", "salon", "samsclub", "samsung",
    "sandvik", "sandvikcoromant", "sanofi", "sap", "sarl", "sas", "saxo", "sbi", "sbs", "sca",
    "scb", "schaeffler", "schmidt", "scholarships", "school", "schule", "schwarz", "science",
    "scot", "search", "seat", "secure", "security", "seek", "select", "sener", "services",
    "seven", "sew", "sex", "sexy", "sfr", "shangrila", "sharp", "shaw", "shell", "shia",
    "shiksha", "shoes", "shop", "shopping", "shouji", "showtime", "silk", "sina", "singles",
    "site", "ski", "skin", "sky", "skype", "sling", "smart", "smile", "sncf", "soccer",
    "social", "softbank", "software", "sohu", "solar", "solutions", "song", "sony", "soy",
    "spa", "space", "sport", "spot", "srl", "stada", "staples", "star", "statebank",
    "statefarm", "stc", "stcgroup", "stockholm", "storage", "store", "stream", "studio",
    "study", "style", "sucks", "supplies", "supply", "support", "surf", "surgery", "suzuki",
    "swatch", "swiss", "sydney", "systems", "tab", "taipei", "talk", "taobao", "target",
    "tatamotors", "tatar", "tattoo", "tax", "taxi", "tci", "tdk", "team", "tech", "technology",
    "tel", "temasek", "tennis", "test", "teva", "thd", "theater", "theatre", "tiaa", "tickets",
    "tienda", "tiffany", "tips", "tires", "tirol", "tjmaxx", "tjx", "tkmaxx", "tmall", "today",
    "tokyo", "tools", "top", "toray", "toshiba", "total", "tours", "town", "toyota", "toys",
    "trade", "trading", "training", "travel", "travelchannel", "travelers",
    "travelersinsurance", "trust", "trv", "tube", "tui", "tunes", "tushu", "tvs", "ubank",
    "ubs", "unicom", "university", "uno", "uol", "ups", "vacations", "vana", "vanguard",
    "vegas", "ventures", "verisign", "versicherung", "vet", "viajes", "video", "vig", "viking",
    "villas", "vin", "vip", "virgin", "visa", "vision", "viva", "vivo", "vlaanderen", "vodka",
    "volkswagen", "volvo", "vote", "voting", "voto", "voyage", "vuelos", "wales", "walmart",
    "walter", "wang", "wanggou", "watch", "watches", "weather", "weatherchannel", "webcam",
    "weber", "website", "wedding", "weibo", "weir", "whoswho", "wien", "wiki", "williamhill",
    "win", "windows", "wine", "winners", "wme", "wolterskluwer", "woodside", "work", "works",
    "world", "wow", "wtc", "wtf", "xbox", "xerox", "xfinity", "xihuan", "xin", "xxx", "xyz",
    "yachts", "yahoo", "yamaxun", "yandex", "yodobashi", "yoga", "yokohama", "you", "youtube",
    "yun", "zappos", "zara", "zero", "zone", "zuerich",
];

/// Internationalised top-level domains (a label of another script: `пример.рф`), from the same
/// list. Sorted.
const IDN_TLDS: &[&str] = &[
    "vermögensberater",
    "vermögensberatung",
    "ελ",
    "ευ",
    "бг",
    "бел",
    "дети",
    "ею",
    "католик",
    "ком",
    "мкд",
    "мон",
    "москва",
    "онлайн",
    "орг",
    "рус",
    "рф",
    "сайт",
    "срб",
    "укр",
    "қаз",
    "հայ",
    "ישראל",
    "קום",
    "ابوظبي",
    "اتصالات",
    "ارامكو",
    "الاردن",
    "البحرين",
    "الجزائر",
    "السعودية",
    "السعوديه",
    "السعودیة",
    "السعودیۃ",
    "العليان",
    "المغرب",
    "اليمن",
    "امارات",
    "ايران",
    "ایران",
    "بارت",
    "بازار",
    "بيتك",
    "بھارت",
    "تونس",
    "سودان",
    "سوريا",
    "سورية",
    "شبكة",
    "عراق",
    "عرب",
    "عمان",
    "فلسطين",
    "قطر",
    "كاثوليك",
    "كوم",
    "مصر",
    "مليسيا",
    "موريتانيا",
    "موقع",
    "همراه",
    "پاكستان",
    "پاکستان",
    "ڀارت",
    "कॉम",
    "नेट",
    "भारत",
    "भारतम्",
    "भारोत",
    "संगठन",
    "বাংলা",
    "ভারত",
    "ভাৰত",
    "ਭਾਰਤ",
    "ભારત",
    "ଭାରତ",
    "இந்தியா",
    "இலங்கை",
    "சிங்கப்பூர்",
    "భారత్",
    "ಭಾರತ",
    "ഭാരതം",
    "ලංකා",
    "คอม",
    "ไทย",
    "ລາວ",
    "გე",
    "みんな",
    "アマゾン",
    "クラウド",
    "グーグル",
    "コム",
    "ストア",
    "セール",
    "ファッション",
    "ポイント",
    "世界",
    "中信",
    "中国",
    "中國",
    "中文网",
    "亚马逊",
    "企业",
    "佛山",
    "信息",
    "健康",
    "八卦",
    "公司",
    "公益",
    "台湾",
    "台灣",
    "商城",
    "商店",
    "商标",
    "嘉里",
    "嘉里大酒店",
    "在线",
    "大拿",
    "天主教",
    "娱乐",
    "家電",
    "广东",
    "微博",
    "慈善",
    "我爱你",
    "手机",
    "招聘",
    "政务",
    "政府",
    "新加坡",
    "新闻",
    "时尚",
    "書籍",
    "机构",
    "淡马锡",
    "游戏",
    "澳門",
    "澳门",
    "点看",
    "移动",
    "组织机构",
    "网址",
    "网店",
    "网站",
    "网络",
    "联通",
    "臺灣",
    "谷歌",
    "购物",
    "通販",
    "集团",
    "電訊盈科",
    "飞利浦",
    "食品",
    "餐厅",
    "香格里拉",
    "香港",
    "닷넷",
    "닷컴",
    "삼성",
    "한국",
];

/// Whether `label` can end a domain: two ASCII letters (a country), a known generic or
/// internationalised top-level domain, or an ASCII-encoded one (`xn--p1ai`). Written in one
/// case or capitalised: `k.mT` in code is not Malta.
fn is_tld(label: &[u8]) -> bool {
    if let Ok(l) = std::str::from_utf8(label)
        && !l.is_ascii()
    {
        return IDN_TLDS.binary_search(&l).is_ok();
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
fn domain_end(text: &[u8], d: usize, edges: Edges<'_>) -> Option<usize> {
    let mut i = d;
    let mut labels = 0;
    let mut end = None;
    loop {
        let start = i;
        // Where the label's leading ASCII letters and digits end, if other characters follow.
        let mut ascii_end = None;
        loop {
            // Where two strings meet inside a last label, the address may end (`…@exa` +
            // `mple.com` + `x`): the longest end found wins.
            if labels >= 1
                && i > start
                && text[i - 1] != b'-'
                && edges.contains(i)
                && is_tld(&text[start..i])
            {
                end = Some(i);
            }
            let b = at(text, i);
            if b.is_ascii_alphanumeric() || b == b'-' {
                i += 1;
            } else if let Some((_, len)) = char_at(text, i).filter(|(c, _)| c.is_alphanumeric()) {
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
                // `example.com-call`: an en dash or a hyphen (the guard reads both as `-`)
                // glued a word to the address; a top-level domain before it ends it.
                _ if !continues
                    && let Some(h) = label.iter().position(|&b| b == b'-')
                    && is_tld(&label[..h]) =>
                {
                    end = Some(start + h);
                }
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

/// An `@` between names that is not an address (besides `git@host`, the SSH login every Git
/// forge uses — `ssh -T git@github.com`, `git@gitlab.com`, `git@bitbucket.org` —, which
/// [`find`] skips wherever it stands): an scp-style Git or SSH remote
/// (`git@github.com:org/repo.git`), or the user part of a URL (`ssh://git@github.com/…`,
/// `https://user@bitbucket.org/…`). Code (`q@k.transpose(-2, -1)`, `x@self.weight`) ends in
/// no top-level domain, so [`domain_end`] finds none.
fn is_code_or_remote(text: &[u8], start: usize, end: usize) -> bool {
    let after = at(text, end);
    // `host:path` with a path (`org/repo.git`, `~/x`, `/srv`); `alice@example.com:hunter2` in a
    // credential dump is an address.
    let path = text[(end + 1).min(text.len())..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'~' | b'_' | b'.' | b'-'))
        .any(|&b| b == b'/' || b == b'~');
    let scp = after == b':' && path;
    scp || in_userinfo(text, start)
}

/// Whether the local part at `start` lies in a URL's user information, `scheme://` then
/// `user` or `user:password` before the `@` (`https://x-access-token:ghp_…@github.com/…`):
/// the host after it is a server, not a mailbox.
fn in_userinfo(text: &[u8], start: usize) -> bool {
    // RFC 3986's userinfo characters, `:` included; a user part runs no longer than this.
    let userinfo = |b: u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:".contains(&b);
    let floor = start.saturating_sub(256);
    let mut i = start;
    while i > floor && userinfo(text[i - 1]) {
        i -= 1;
        if text[..i].ends_with(b"://") {
            return true;
        }
    }
    text[..i].ends_with(b"://")
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
                    "john.doe@comcast.net, MAIL: SUPPORT@ACME.NET; x@y.aws; rx@cvs.pharmacy",
                    &[
                        "john.doe@comcast.net",
                        "SUPPORT@ACME.NET",
                        "x@y.aws",
                        "rx@cvs.pharmacy",
                    ],
                ),
                (
                    "Contact bob@example.com.I am out; alice@example.com(work) or alice@example.com[1]",
                    &["bob@example.com", "alice@example.com", "alice@example.com"],
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
                // rt3 review: `git@host` is the forges' SSH login, wherever it stands.
                (
                    "ssh -T git@github.com; ssh git@gitlab.com, Host git@bitbucket.org\ngit@ssh.dev.azure.com",
                    &[],
                ),
                (
                    "digit@example.com gitter@example.com git.bot@example.com",
                    &[
                        "digit@example.com",
                        "gitter@example.com",
                        "git.bot@example.com",
                    ],
                ),
                // A URL's `user:password` (found by the review of streamed masks: the token
                // and host were masked as one address).
                (
                    "https://x-access-token:ghp_Zq8RkT2vWm4XyB7nP1sL9dF3gH6jK0aC5eQx@github.com/a; https://deploy:s3cret%21Pass@registry.acme.io/v2/",
                    &[],
                ),
                (
                    "no scheme: deploy:s3cret@registry.acme.io",
                    &["s3cret@registry.acme.io"],
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
