#!/usr/bin/perl
# words.pl - a hash- and regex-heavy Perl workload with deterministic output.
use strict;
use warnings;

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed >> 8; }

my @letters = split //, "etaoinshrdlucmfwypvbgkqjxz";
my (%count, %by_len, %pairs);
my $text = "";
for my $i (1 .. 60000) {
    my $w = join "", map { $letters[rnd() % (1 + rnd() % 26)] } 1 .. 2 + rnd() % 8;
    $count{$w}++;
    push @{ $by_len{length $w} }, $w;
    $text .= "$w ";
    $pairs{ substr($w, 0, 2) }{$w} = $i;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
print "distinct ", scalar(keys %count), "\n";
print "top @top\n";
print "len $_ ", scalar @{ $by_len{$_} }, "\n" for sort { $a <=> $b } keys %by_len;

(my $swapped = $text) =~ s/\b(\w)(\w*)(\w)\b/$3$2$1/g;
my @vowelly = $text =~ /\b(\w*[aeiou]{2}\w*)\b/g;
my %seen;
my @uniq = grep { !$seen{$_}++ } @vowelly;
print "vowelly ", scalar(@vowelly), " unique ", scalar(@uniq), "\n";
print "swapped length ", length($swapped), " e-count ", ($swapped =~ tr/e//), "\n";

my $n = 0;
for my $p (sort keys %pairs) {
    $n += scalar keys %{ $pairs{$p} };
    delete $pairs{$p} if $p =~ /^[aeiou]/;
}
print "pairs ", scalar(keys %pairs), " words $n\n";
my $joined = join ",", map { sprintf "%s=%d", $_, $count{$_} } sort keys %count;
my $sum = 0;
$sum = ($sum * 31 + ord) % 1000000007 for split //, $joined;
print "checksum $sum\n";
