"""Generates corpus.jsonl: labelled positives and near-miss negatives for
every built-in guardrail detector. Deterministic (fixed seed); rerun with
`python3 make_corpus.py > corpus.jsonl`."""
import json
import random

random.seed(7)
rows = []


def add(text, expect):
    rows.append({"text": text, "expect": sorted(set(expect))})


def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(random.randint(0, 9))
    for check in range(10):
        cand = digits + [check]
        total = 0
        for i, d in enumerate(reversed(cand)):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        if total % 10 == 0:
            return "".join(map(str, cand))


def group(s, n=4, sep=" "):
    return sep.join(s[i:i + n] for i in range(0, len(s), n))


def iban(country, bban):
    rearranged = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(num) % 97
    return f"{country}{check:02d}{bban}"


names = ["alice", "bob.smith", "carol+news", "dave_99", "eve.o"]
domains = ["example.com", "mail.example.org", "corp.example.co.uk", "ex-ample.io"]
for i in range(16):
    add(f"Please write to {random.choice(names)}@{random.choice(domains)} about ticket {i}.", ["email"])
for t in ["Meet me @ noon", "user at example dot com", "the @handle on social", "email: (none given)",
          "a@b", "price is 5@10 units", "see docs/@types/node", "foo@bar", "name@localhost is internal",
          "just an @ sign", "twitter @jack", "x @ y . z", "contact via the portal", "@@@@", "me@", "@domain.com"]:
    add(t, [])

phones = ["+44 20 7946 0958", "(415) 555-0132", "+1-202-555-0143", "020 7946 0958", "+49 30 901820",
          "+33 1 42 68 53 00", "202.555.0173", "+81 3-1234-5678", "(212) 555 0101", "+61 2 9374 4000",
          "0161 496 0753", "+353 1 234 5678", "650-555-0199", "+91 22 2778 8000", "+1 (646) 555-0177",
          "0121 496 0000"]
for p in phones:
    add(f"Call us on {p} during office hours.", ["phone"])
for t in ["Version 10.2.3 was released in 2024", "Order 123456789 shipped", "Score was 3-2 after 90 minutes",
          "Room 101, floor 3", "ISBN 978 0 306 40615", "Total: 1,234,567.89", "Build 2024.05.17",
          "the year 1999 and 2000", "Invoice #20240517", "port 8080 and 443", "pi is 3.14159265",
          "coordinates 51.5074, 0.1278", "12 apples and 34 pears", "batch 42-17", "zip 94105", "page 12 of 30"]:
    add(t, [])

for i in range(16):
    prefix = random.choice(["4", "51", "55", "37", "6011"])
    length = 15 if prefix == "37" else 16
    num = luhn_complete(prefix, length)
    sep = random.choice([" ", "-", ""])
    shown = group(num, 4, sep) if sep else num
    add(f"Charge card {shown} for the order.", ["credit_card"])
for i in range(16):
    num = luhn_complete("4", 16)
    bad = num[:-1] + str((int(num[-1]) + 1) % 10)
    add(f"Card number {group(bad)} was rejected.", [])

for i in range(16):
    area = random.choice([random.randint(1, 665), random.randint(667, 899)])
    add(f"SSN on file: {area:03d}-{random.randint(1, 99):02d}-{random.randint(1, 9999):04d}.", ["ssn"])
for t in ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000", "12-345-6789",
          "1234-56-789", "phone 555-1234", "date 2024-05-17", "code 12-34-56", "123456789", "ref 999-99-9999",
          "part 000-00-0000", "id 666-66-6666", "serial 900-12-3456", "lot 12-3-4567"]:
    add(f"Value {t} here.", [])

bbans = [("GB", "WEST12345698765432"), ("DE", "370400440532013000"), ("FR", "20041010050500013M02606"),
         ("NL", "ABNA0417164300"), ("ES", "21000418450200051332"), ("IT", "X0542811101000000123456"),
         ("BE", "539007547034"), ("CH", "0076201162385295 7".replace(" ", "")), ("AT", "1904300234573201"),
         ("IE", "AIBK93115212345678"), ("DK", "00400440116243"), ("SE", "50000000058398257466"),
         ("NO", "86011117947"), ("PL", "109010140000071219812874"), ("PT", "000201231234567890154"),
         ("FI", "21000012345678")]
for c, b in bbans:
    code = iban(c, b)
    shown = group(code) if random.random() < 0.5 else code
    add(f"Transfer to IBAN {shown} today.", ["iban"])
for c, b in bbans:
    code = iban(c, b)
    bad = code[:2] + f"{(int(code[2:4]) + 1) % 100:02d}" + code[4:]
    add(f"Old account {bad} is closed.", [])

for i in range(12):
    add(f"Server at {random.randint(1, 223)}.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)} is down.",
        ["ip_address"])
for t in ["2001:db8::8a2e:370:7334", "fe80::1", "::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"]:
    add(f"IPv6 host {t} answered.", ["ip_address"])
for t in ["version 1.2.3.4.5", "address 10.0.0.256", "release 2.10.300.4000", "v1.2.3", "time 12:30:45",
          "ratio 3:2", "build 1.0.0.0.1", "300.1.1.1", "1.2.3", "chapter 4.5.6", "ip 999.1.1.1",
          "a::b is not", "10.0.0", "192.168.1", "map key:value:other", "12:34"]:
    add(f"Note: {t} ok.", [])

secrets = ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
           "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "xoxb-123456789012-abcdefghijklmn",
           "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
           "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ",
           "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
           "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
           "Zx9Qm2LpR7tVw4Ks8NbYc3Hd", "q8W2e4R6t8Y0u2I4o6P8a0S2", "Xk4Jp9Lw2Qz7Rt5Vn8Bm3Hc6",
           "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "ghs_1234567890abcdefghijklmnopqrstuvwxyzAB",
           "xoxp-1234-5678-abcdefghij", "AKIAJ2ZQ4XL7EXAMPLE9"]
for s in secrets:
    add(f"config: {s}", ["secret"])
for t in ["internationalization", "supercalifragilisticexpialidocious", "aaaaaaaaaaaaaaaaaaaaaaaa",
          "the_quick_brown_fox_jumps", "ABCDEFGHIJKLMNOPQRSTUVWX", "12345678901234567890123",
          "my-long-kebab-case-identifier", "sk-short", "ghp_short", "AKIA-not-a-key",
          "eyJ-just-a-prefix", "BEGIN PUBLIC KEY", "password123", "README_FIRST_PLEASE_NOW",
          "CamelCaseIdentifierName", "snake_case_identifier_x"]:
    add(f"text {t} end", [])

for line in rows:
    print(json.dumps(line, ensure_ascii=False))
