"""XML text of a sample Sentinel-1 GRD product: manifest, annotation, calibration and noise files.

Why text templates: the files must look like the ones ESA distributes (the
element names and nesting of the Sentinel-1 Product Specification,
S1-RS-MDA-52-7441, and the XSDs that xarray-sentinel bundles), because the
readers in tfseaice.data are written against those. Calibration and noise files
validate against `s1-level-1-calibration.xsd` / `s1-level-1-noise.xsd`
(tests/test_sentinel1_reader.py checks it); the annotation carries the subset
of `s1-level-1-product.xsd` that readers use (adsHeader, productInformation,
imageInformation, swathTiming, geolocationGrid), not the full schema.
IPF < 2.9 noise files use the older layout (`noiseVectorList`/`noiseLut`,
range only), as products of that time did.
"""

import numpy as np

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _floats(a, fmt="{:.6e}"):
    return " ".join(fmt.format(float(v)) for v in np.ravel(a))


def _ints(a):
    return " ".join(str(int(v)) for v in np.ravel(a))


def iso(t):
    """numpy datetime64 -> `YYYY-MM-DDThh:mm:ss.ffffff` (the products' UTC format, no zone)."""
    return str(np.datetime64(t, "us"))


def ads_header(p, pol, image_number):
    return (f"<adsHeader><missionId>{p['mission']}</missionId><productType>{p['product_type']}</productType>"
            f"<polarisation>{pol}</polarisation><mode>{p['mode']}</mode><swath>{p['mode']}</swath>"
            f"<startTime>{iso(p['start'])}</startTime><stopTime>{iso(p['stop'])}</stopTime>"
            f"<absoluteOrbitNumber>{p['orbit']}</absoluteOrbitNumber>"
            f"<missionDataTakeId>{p['take']}</missionDataTakeId><imageNumber>{image_number:03d}</imageNumber>"
            "</adsHeader>")


def calibration_xml(p, pol, image_number, lines, pixels, sigma, line_times):
    """`calibration-*.xml`: one calibrationVector per line of `lines`, values on `pixels` (sigmaNought = `sigma`)."""
    vectors = []
    n = len(pixels)
    for i, line in enumerate(lines):
        s = sigma[i]
        vectors.append(
            f"<calibrationVector><azimuthTime>{iso(line_times[i])}</azimuthTime><line>{int(line)}</line>"
            f'<pixel count="{n}">{_ints(pixels)}</pixel>'
            f'<sigmaNought count="{n}">{_floats(s)}</sigmaNought>'
            f'<betaNought count="{n}">{_floats(s * 0.9)}</betaNought>'
            f'<gamma count="{n}">{_floats(s * 0.95)}</gamma>'
            f'<dn count="{n}">{_floats(np.full(n, 1.0))}</dn></calibrationVector>')
    return (XML_HEAD + "<calibration>" + ads_header(p, pol, image_number)
            + "<calibrationInformation><absoluteCalibrationConstant>1.000000e+00</absoluteCalibrationConstant>"
            + f'</calibrationInformation><calibrationVectorList count="{len(vectors)}">'
            + "".join(vectors) + "</calibrationVectorList></calibration>\n")


def noise_xml(p, pol, image_number, range_vectors, azimuth_blocks, line_times, new_layout):
    """`noise-*.xml`. range_vectors: [(line, pixels, values)]; azimuth_blocks: [dict] (IPF >= 2.9 only)."""
    rv = []
    tag, lut = ("noiseRangeVector", "noiseRangeLut") if new_layout else ("noiseVector", "noiseLut")
    for i, (line, pixels, values) in enumerate(range_vectors):
        rv.append(f"<{tag}><azimuthTime>{iso(line_times[i])}</azimuthTime><line>{int(line)}</line>"
                  f'<pixel count="{len(pixels)}">{_ints(pixels)}</pixel>'
                  f'<{lut} count="{len(values)}">{_floats(values)}</{lut}></{tag}>')
    body = ads_header(p, pol, image_number)
    if not new_layout:
        body += f'<noiseVectorList count="{len(rv)}">' + "".join(rv) + "</noiseVectorList>"
        return XML_HEAD + "<noise>" + body + "</noise>\n"
    body += f'<noiseRangeVectorList count="{len(rv)}">' + "".join(rv) + "</noiseRangeVectorList>"
    av = []
    for b in azimuth_blocks:
        av.append(f"<noiseAzimuthVector><swath>{b['swath']}</swath>"
                  f"<firstAzimuthLine>{b['first_line']}</firstAzimuthLine>"
                  f"<firstRangeSample>{b['first_sample']}</firstRangeSample>"
                  f"<lastAzimuthLine>{b['last_line']}</lastAzimuthLine>"
                  f"<lastRangeSample>{b['last_sample']}</lastRangeSample>"
                  f'<line count="{len(b["lines"])}">{_ints(b["lines"])}</line>'
                  f'<noiseAzimuthLut count="{len(b["lut"])}">{_floats(b["lut"])}</noiseAzimuthLut>'
                  "</noiseAzimuthVector>")
    body += f'<noiseAzimuthVectorList count="{len(av)}">' + "".join(av) + "</noiseAzimuthVectorList>"
    return XML_HEAD + "<noise>" + body + "</noise>\n"


def annotation_xml(p, pol, image_number, gcps):
    """`annotation/*.xml`: header, product and image information, swath timing, geolocation grid.

    gcps: dict of 1-D arrays line, pixel, latitude, longitude, height, incidence, azimuth_time,
    slant_range_time, elevation.
    """
    points = []
    for i in range(len(gcps["line"])):
        points.append(
            f"<geolocationGridPoint><azimuthTime>{iso(gcps['azimuth_time'][i])}</azimuthTime>"
            f"<slantRangeTime>{gcps['slant_range_time'][i]:.9e}</slantRangeTime>"
            f"<line>{int(gcps['line'][i])}</line><pixel>{int(gcps['pixel'][i])}</pixel>"
            f"<latitude>{gcps['latitude'][i]:.9f}</latitude><longitude>{gcps['longitude'][i]:.9f}</longitude>"
            f"<height>{gcps['height'][i]:.6f}</height><incidenceAngle>{gcps['incidence'][i]:.6f}</incidenceAngle>"
            f"<elevationAngle>{gcps['elevation'][i]:.6f}</elevationAngle></geolocationGridPoint>")
    info = (
        f"<productInformation><pass>{p['pass']}</pass><timelinessCategory>Fast-24h</timelinessCategory>"
        "<platformHeading>-1.700000e+02</platformHeading><projection>Ground Range</projection>"
        "<rangeSamplingRate>2.500000e+07</rangeSamplingRate><radarFrequency>5.405000e+09</radarFrequency>"
        "<azimuthSteeringRate>1.590368e+00</azimuthSteeringRate></productInformation>")
    image = (
        f"<imageInformation><productFirstLineUtcTime>{iso(p['start'])}</productFirstLineUtcTime>"
        f"<productLastLineUtcTime>{iso(p['stop'])}</productLastLineUtcTime>"
        f"<ascendingNodeTime>{iso(p['anx'])}</ascendingNodeTime><anchorTime>{iso(p['start'])}</anchorTime>"
        "<productComposition>Slice</productComposition><sliceNumber>1</sliceNumber>"
        "<sliceList count=\"0\"></sliceList>"
        "<slantRangeTime>4.500000e-03</slantRangeTime><pixelValue>Detected</pixelValue>"
        "<outputPixels>16 bit Unsigned Integer</outputPixels>"
        f"<rangePixelSpacing>{p['spacing']:.6e}</rangePixelSpacing>"
        f"<azimuthPixelSpacing>{p['spacing']:.6e}</azimuthPixelSpacing>"
        f"<azimuthTimeInterval>{p['dt']:.9e}</azimuthTimeInterval>"
        f"<azimuthFrequency>{1.0 / p['dt']:.6e}</azimuthFrequency>"
        f"<numberOfSamples>{p['width']}</numberOfSamples><numberOfLines>{p['height']}</numberOfLines>"
        "<zeroDopMinusDTOffset>0.000000e+00</zeroDopMinusDTOffset>"
        f"<incidenceAngleMidSwath>{p['mid_incidence']:.6e}</incidenceAngleMidSwath>"
        "</imageInformation>")
    return (XML_HEAD + "<product>" + ads_header(p, pol, image_number)
            + "<qualityInformation><productQualityIndex>0.000000e+00</productQualityIndex></qualityInformation>"
            + "<generalAnnotation>" + info + "</generalAnnotation>"
            + "<imageAnnotation>" + image + "</imageAnnotation>"
            + '<swathTiming><linesPerBurst>0</linesPerBurst><samplesPerBurst>0</samplesPerBurst>'
            + '<burstList count="0"></burstList></swathTiming>'
            + f'<geolocationGrid><geolocationGridPointList count="{len(points)}">' + "".join(points)
            + "</geolocationGridPointList></geolocationGrid></product>\n")


MANIFEST_NS = ('xmlns:xfdu="urn:ccsds:schema:xfdu:1" xmlns:safe="http://www.esa.int/safe/sentinel-1.0" '
               'xmlns:s1="http://www.esa.int/safe/sentinel-1.0/sentinel-1" '
               'xmlns:s1sarl1="http://www.esa.int/safe/sentinel-1.0/sentinel-1/sar/level-1" '
               'xmlns:gml="http://www.opengis.net/gml"')


def _metadata_object(ident, body):
    return (f'<metadataObject ID="{ident}" classification="DESCRIPTION" category="DMD">'
            f'<metadataWrap mimeType="text/xml" vocabularyName="SAFE"><xmlData>{body}</xmlData>'
            "</metadataWrap></metadataObject>")


def manifest_xml(p, files, footprint):
    """`manifest.safe`. files: [(rep_id, relative href, size, md5)]; footprint: [(lat, lon)] x 4."""
    number = p["mission"][-1]
    swaths = "".join(f"<s1sarl1:swath>{s}</s1sarl1:swath>" for s in p["swaths"])
    pols = "".join(f"<s1sarl1:transmitterReceiverPolarisation>{q}</s1sarl1:transmitterReceiverPolarisation>"
                   for q in p["polarisations"])
    rel = p["relative_orbit"]
    meta = [
        _metadata_object("processing", (
            f'<safe:processing name="GRD Post Processing" start="{iso(p["stop"])}" stop="{iso(p["stop"])}">'
            '<safe:facility country="Germany" name="Copernicus S1 Core Ground Segment - DPA" '
            'organisation="ESA" site="DLR-Oberpfaffenhofen">'
            f'<safe:software name="Sentinel-1 IPF" version="{p["ipf_text"]}"/></safe:facility>'
            "</safe:processing>")),
        _metadata_object("platform", (
            f"<safe:platform><safe:nssdcIdentifier>2014-016{number}</safe:nssdcIdentifier>"
            f"<safe:familyName>SENTINEL-1</safe:familyName><safe:number>{number}</safe:number>"
            '<safe:instrument><safe:familyName abbreviation="SAR">Synthetic Aperture Radar</safe:familyName>'
            f"<safe:extension><s1sarl1:instrumentMode><s1sarl1:mode>{p['mode']}</s1sarl1:mode>{swaths}"
            "</s1sarl1:instrumentMode></safe:extension></safe:instrument></safe:platform>")),
        _metadata_object("measurementOrbitReference", (
            f'<safe:orbitReference><safe:orbitNumber type="start">{p["orbit"]}</safe:orbitNumber>'
            f'<safe:orbitNumber type="stop">{p["orbit"]}</safe:orbitNumber>'
            f'<safe:relativeOrbitNumber type="start">{rel}</safe:relativeOrbitNumber>'
            f'<safe:relativeOrbitNumber type="stop">{rel}</safe:relativeOrbitNumber>'
            "<safe:cycleNumber>1</safe:cycleNumber><safe:phaseIdentifier>1</safe:phaseIdentifier>"
            f"<safe:extension><s1:orbitProperties><s1:pass>{p['pass']}</s1:pass>"
            f"<s1:ascendingNodeTime>{iso(p['anx'])}</s1:ascendingNodeTime></s1:orbitProperties>"
            "</safe:extension></safe:orbitReference>")),
        _metadata_object("generalProductInformation", (
            "<s1sarl1:standAloneProductInformation><s1sarl1:productClass>S</s1sarl1:productClass>"
            "<s1sarl1:productClassDescription>SAR Standard L1 Product</s1sarl1:productClassDescription>"
            "<s1sarl1:productComposition>Slice</s1sarl1:productComposition>"
            f"<s1sarl1:productType>{p['product_type']}</s1sarl1:productType>"
            "<s1sarl1:productTimelinessCategory>Fast-24h</s1sarl1:productTimelinessCategory>"
            "<s1sarl1:instrumentConfigurationID>7</s1sarl1:instrumentConfigurationID>"
            f"<s1sarl1:missionDataTakeID>{p['take']}</s1sarl1:missionDataTakeID>{pols}"
            "<s1sarl1:sliceProductFlag>false</s1sarl1:sliceProductFlag>"
            "</s1sarl1:standAloneProductInformation>")),
        _metadata_object("acquisitionPeriod", (
            f"<safe:acquisitionPeriod><safe:startTime>{iso(p['start'])}</safe:startTime>"
            f"<safe:stopTime>{iso(p['stop'])}</safe:stopTime></safe:acquisitionPeriod>")),
        _metadata_object("measurementFrameSet", (
            '<safe:frameSet><safe:frame><safe:footPrint srsName="http://www.opengis.net/gml/srs/epsg.xml#4326">'
            "<gml:coordinates>" + " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in footprint)
            + "</gml:coordinates></safe:footPrint></safe:frame></safe:frameSet>")),
    ]
    objects = []
    for i, (rep_id, href, size, md5) in enumerate(files):
        mime = "application/octet-stream" if href.endswith(".tiff") else "text/xml"
        objects.append(
            f'<dataObject ID="object{i:03d}" repID="{rep_id}"><byteStream mimeType="{mime}" size="{size}">'
            f'<fileLocation locatorType="URL" href="./{href}"/><checksum checksumName="MD5">{md5}</checksum>'
            "</byteStream></dataObject>")
    return (XML_HEAD + f'<xfdu:XFDU {MANIFEST_NS} version="esa/safe/sentinel-1.0/sentinel-1/sar/level-1/'
            'standard/grd"><informationPackageMap><xfdu:contentUnit unitType="SAFE Archive Information Package" '
            'textInfo="Sentinel-1 Level-1 product"/></informationPackageMap>'
            "<metadataSection>" + "".join(meta) + "</metadataSection>"
            "<dataObjectSection>" + "".join(objects) + "</dataObjectSection></xfdu:XFDU>\n")
