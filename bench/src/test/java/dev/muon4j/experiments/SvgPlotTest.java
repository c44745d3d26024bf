package dev.muon4j.experiments;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.awt.Font;
import java.awt.font.FontRenderContext;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/** The plot's legend stays on its canvas, inside the plot when it is small, below it when it is not. */
class SvgPlotTest {
    private static final String SVG = "http://www.w3.org/2000/svg";
    private static final String[] COLORS = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

    private static SvgPlot plot(List<String> names) {
        SvgPlot plot = new SvgPlot("Validation loss vs tokens", "training tokens", "validation loss (nats/token)");
        for (int k = 0; k < names.size(); k++) {
            double[] x = new double[40];
            double[] y = new double[40];
            for (int i = 0; i < x.length; i++) {
                x[i] = 2048.0 * (i + 1);
                y[i] = 3 + Math.exp(-i / (8.0 + k)) + 0.02 * k;
            }
            plot.add(new SvgPlot.Series(names.get(k), COLORS[k % COLORS.length], x, y));
        }
        return plot;
    }

    private static Document parse(String svg) throws Exception {
        DocumentBuilderFactory factory = DocumentBuilderFactory.newInstance();
        factory.setNamespaceAware(true);
        factory.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        return factory.newDocumentBuilder().parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
    }

    /** The width a renderer's sans-serif face gives the text, measured with Java's own fonts. */
    private static double measured(String text, double size) {
        Font font = new Font(Font.SANS_SERIF, Font.PLAIN, 1).deriveFont((float) size);
        return font.getStringBounds(text, new FontRenderContext(null, true, true)).getWidth();
    }

    private static boolean fontsAvailable() {
        try {
            return measured("x", 12) > 0;
        } catch (Throwable e) { // a headless JDK without fonts
            return false;
        }
    }

    /** Every text but the rotated axis label lies within the canvas, by the width of a real font. */
    private static List<Element> assertTextsOnCanvas(Document doc) {
        Element root = doc.getDocumentElement();
        String[] box = root.getAttribute("viewBox").split(" ");
        double width = Double.parseDouble(box[2]);
        double height = Double.parseDouble(box[3]);
        assertEquals(width, Double.parseDouble(root.getAttribute("width")));
        assertEquals(height, Double.parseDouble(root.getAttribute("height")));
        List<Element> legend = new ArrayList<>();
        NodeList texts = doc.getElementsByTagNameNS(SVG, "text");
        for (int i = 0; i < texts.getLength(); i++) {
            Element t = (Element) texts.item(i);
            if (t.hasAttribute("transform")) {
                continue;
            }
            double x = Double.parseDouble(t.getAttribute("x"));
            double y = Double.parseDouble(t.getAttribute("y"));
            double w = measured(t.getTextContent(), Double.parseDouble(t.getAttribute("font-size")));
            double from = switch (t.getAttribute("text-anchor")) {
                case "middle" -> x - w / 2;
                case "end" -> x - w;
                default -> x;
            };
            assertTrue(from >= 0 && from + w <= width && y > 0 && y + 4 <= height,
                    "'" + t.getTextContent() + "' at x " + from + " to " + (from + w) + ", y " + y + " on a canvas of " + width + " x " + height);
            if (!t.hasAttribute("text-anchor")) {
                legend.add(t);
            }
        }
        return legend;
    }

    @Test
    void aSmallLegendSitsInACornerOfThePlot() throws Exception {
        assumeTrue(fontsAvailable(), "no fonts to measure text with");
        Document doc = parse(plot(List.of("AdamW", "Muon (hybrid, Moonlight scale)")).render());
        assertEquals("480", doc.getDocumentElement().getAttribute("height"), "the canvas keeps its size");
        List<Element> legend = assertTextsOnCanvas(doc);
        assertEquals(List.of("AdamW", "Muon (hybrid, Moonlight scale)"), legend.stream().map(Element::getTextContent).toList());
        for (Element t : legend) {
            double y = Double.parseDouble(t.getAttribute("y"));
            assertTrue(y > 50 && y < 480 - 60, "inside the plot: " + y);
        }
    }

    @Test
    void longLabelsAndManySeriesGoBelowThePlotAndStayOnTheCanvas() throws Exception {
        assumeTrue(fontsAvailable(), "no fonts to measure text with");
        String sentence = "Muon (hybrid, Moonlight scale) with cautious weight decay, per-head query/key orthogonalization, "
                + "QK-clip at 100 and the Gram Newton-Schulz iteration, learning rate 0.02, seed 1";
        List<List<String>> cases = List.of(
                List.of(sentence, "AdamW " + sentence),
                List.of("x".repeat(400)),
                java.util.stream.IntStream.range(0, 24).mapToObj(i -> "run " + i + " of the learning-rate sweep").toList());
        for (List<String> names : cases) {
            Document doc = parse(plot(names).render());
            assertTrue(Integer.parseInt(doc.getDocumentElement().getAttribute("height")) > 480, "the canvas grows");
            List<Element> legend = assertTextsOnCanvas(doc);
            String shown = String.join("", legend.stream().map(Element::getTextContent).toList()).replace(" ", "");
            assertEquals(String.join("", names).replace(" ", ""), shown, "every label is shown whole, in order");
            for (Element t : legend) {
                assertTrue(Double.parseDouble(t.getAttribute("y")) > 480, "below the plot and its axis label");
            }
        }
    }

    @Test
    void labelsWrapAtSpacesAndInsideWordsOnlyWhenTheyMust() {
        double room = SvgPlot.textWidth("Muon hybrid", 13);
        assertEquals(List.of("Muon hybrid", "Moonlight", "scale"), SvgPlot.wrap("Muon hybrid Moonlight scale", room, 13));
        List<String> pieces = SvgPlot.wrap("W".repeat(50), room, 13);
        assertEquals("W".repeat(50), String.join("", pieces));
        assertTrue(pieces.size() > 1 && pieces.stream().allMatch(p -> SvgPlot.textWidth(p, 13) <= room), pieces.toString());
        assertEquals(List.of(""), SvgPlot.wrap("", room, 13));
    }

    @Test
    void theEstimatedWidthIsNeverBelowTheMeasuredOne() {
        assumeTrue(fontsAvailable(), "no fonts to measure text with");
        for (String text : List.of("Muon (hybrid, Moonlight scale)", "WWWWMMMM", "mmmwww", "iiiilll", "0123456789", "AdamW ZeRO-1",
                "Expert load balance (worst MoE layer; 1 = balanced)", "ÄÖÜ éèà")) {
            assertTrue(SvgPlot.textWidth(text, 13) >= measured(text, 13), text + ": " + SvgPlot.textWidth(text, 13) + " < " + measured(text, 13));
        }
    }

    @Test
    void facetsPlaceEachPlotInItsCellUnderOneTitle() throws Exception {
        // Three plots in two columns: two rows, the second as tall as its one plot, whose long legend goes below it.
        SvgPlot small = plot(List.of("AdamW", "Muon"));
        List<String> many = new ArrayList<>();
        for (int k = 0; k < 12; k++) {
            many.add("a long series name that makes the legend too large to sit inside the plot, number " + k);
        }
        SvgPlot tall = plot(many);
        Document doc = parse(SvgPlot.facets("SVD entropy <per group>", List.of(small, small, tall), 2));
        Element root = doc.getDocumentElement();
        NodeList nested = root.getElementsByTagNameNS(SVG, "svg");
        assertEquals(3, nested.getLength(), "one nested document per plot");
        int[][] cells = {{0, 44}, {800, 44}, {0, 44 + 480}};
        for (int i = 0; i < 3; i++) {
            Element e = (Element) nested.item(i);
            assertEquals(cells[i][0], Integer.parseInt(e.getAttribute("x")), "plot " + i + " x");
            assertEquals(cells[i][1], Integer.parseInt(e.getAttribute("y")), "plot " + i + " y");
        }
        int tallHeight = Integer.parseInt(((Element) nested.item(2)).getAttribute("height"));
        assertTrue(tallHeight > 480, "the long legend went below its plot: " + tallHeight);
        assertEquals(1600, Integer.parseInt(root.getAttribute("width")));
        assertEquals(44 + 480 + tallHeight, Integer.parseInt(root.getAttribute("height")), "rows as tall as their tallest plot");
        assertEquals("SVD entropy <per group>", root.getElementsByTagNameNS(SVG, "text").item(0).getTextContent(), "the title, escaped");
        assertEquals(2 + 2 + 12, root.getElementsByTagNameNS(SVG, "polyline").getLength(), "every series drawn");
    }
}
