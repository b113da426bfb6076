package dev.taskq.client;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * IP address literals, checked without the resolver ({@code InetAddress.getByName} looks up
 * what it cannot parse).
 */
final class IpAddresses {
  private IpAddresses() {}

  /** Whether {@code text} is a dotted-quad IPv4 address (no leading zeros, as Python's). */
  static boolean isIpv4(String text) {
    String[] parts = text.split("\\.", -1);
    if (parts.length != 4) {
      return false;
    }
    for (String part : parts) {
      if (!part.matches("0|[1-9][0-9]{0,2}") || Integer.parseInt(part) > 255) {
        return false;
      }
    }
    return true;
  }

  /**
   * {@code text} as RFC 5952 writes an IPv6 address (lowercase, leading zeros dropped, the
   * longest run of two or more zero groups as ::), a zone ({@code %eth0}) kept; null if it is
   * not one.
   */
  static String normalizeIpv6(String text) {
    String zone = "";
    int percent = text.indexOf('%');
    if (percent >= 0) {
      zone = text.substring(percent);
      text = text.substring(0, percent);
      if (zone.length() == 1) {
        return null;
      }
    }
    List<Integer> groups = new ArrayList<>();
    String ipv4 = null;
    int lastColon = text.lastIndexOf(':');
    if (text.indexOf('.') >= 0) { // an IPv4 address in the last 32 bits
      ipv4 = text.substring(lastColon + 1);
      if (!isIpv4(ipv4)) {
        return null;
      }
      String[] octets = ipv4.split("\\.");
      int high = Integer.parseInt(octets[0]) << 8 | Integer.parseInt(octets[1]);
      int low = Integer.parseInt(octets[2]) << 8 | Integer.parseInt(octets[3]);
      text = text.substring(0, lastColon + 1) + Integer.toHexString(high) + ":" + Integer.toHexString(low);
    }
    int doubleColon = text.indexOf("::");
    if (doubleColon >= 0 && text.indexOf("::", doubleColon + 1) >= 0) {
      return null;
    }
    List<Integer> head = hexGroups(doubleColon >= 0 ? text.substring(0, doubleColon) : text);
    List<Integer> tail = doubleColon >= 0 ? hexGroups(text.substring(doubleColon + 2)) : List.of();
    if (head == null || tail == null) {
      return null;
    }
    int missing = 8 - head.size() - tail.size();
    if (doubleColon >= 0 ? missing < 1 : missing != 0) {
      return null;
    }
    groups.addAll(head);
    for (int i = 0; i < missing && doubleColon >= 0; i++) {
      groups.add(0);
    }
    groups.addAll(tail);
    return format(groups, ipv4) + zone;
  }

  /** The 16-bit groups of "a:b:c" ("" has none); null if one is not 1 to 4 hex digits. */
  private static List<Integer> hexGroups(String text) {
    List<Integer> groups = new ArrayList<>();
    if (text.isEmpty()) {
      return groups;
    }
    for (String group : text.split(":", -1)) {
      if (!group.matches("[0-9A-Fa-f]{1,4}")) {
        return null;
      }
      groups.add(Integer.parseInt(group, 16));
    }
    return groups;
  }

  private static String format(List<Integer> groups, String ipv4) {
    int bestStart = -1;
    int bestLength = 1;
    for (int i = 0; i < 8; ) {
      if (groups.get(i) != 0) {
        i++;
        continue;
      }
      int j = i;
      while (j < 8 && groups.get(j) == 0) {
        j++;
      }
      if (j - i > bestLength) {
        bestStart = i;
        bestLength = j - i;
      }
      i = j;
    }
    boolean mapped = ipv4 != null && groups.subList(0, 5).stream().allMatch(g -> g == 0) && groups.get(5) == 0xffff;
    StringBuilder out = new StringBuilder();
    int end = mapped ? 6 : 8;
    for (int i = 0; i < end; i++) {
      if (i == bestStart) {
        out.append(i == 0 ? "::" : ":");
        i += bestLength - 1;
        continue;
      }
      out.append(Integer.toHexString(groups.get(i)).toLowerCase(Locale.ROOT));
      if (i < end - 1) {
        out.append(':');
      }
    }
    if (mapped) {
      String prefix = out.toString();
      return (prefix.endsWith(":") ? prefix : prefix + ":") + ipv4;
    }
    return out.toString();
  }
}
